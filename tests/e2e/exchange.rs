//! End to end: token exchange (RFC 8693) against the fake Dex, which
//! verifies ES256 subject tokens from a test CI issuer exactly as the
//! reference note describes Dex doing; personal access tokens; and
//! `--format curl`. Real kubectl 1.32, real git and real curl use what
//! dexcred hands out, and no token ever appears on a command line.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::git::{GitAuth, GitServer};
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{
    DEX_CLIENT, FakeIdp, Fault, GITHUB_SUBJECT, RecordedRequest, decode_payload,
};
use dexcred_testkit::kube::KubeApi;
use dexcred_testkit::tls::TestCa;

const CONNECTOR: &str = "gitlab";
const AUDIENCE: &str = "https://dex.example.com";
const PIPELINE: &str = "project_path:group/app:ref_type:branch:ref:main";
const OTHER_PIPELINE: &str = "project_path:group/other:ref_type:branch:ref:main";
const PUBLIC_CLIENT: &str = "pipelines";
const ID_TOKEN_URN: &str = "urn:ietf:params:oauth:token-type:id_token";
const HOUR: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_secs(60);

/// A fake Dex with a token-exchange connector trusting the CI issuer, a
/// public client for pipelines, an isolated user, and a subject token file.
struct Rig {
    env: Env,
    idp: FakeIdp,
    subject_file: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let idp = FakeIdp::pcd();
        idp.add_exchange_connector(CONNECTOR, AUDIENCE, true);
        idp.add_client(PUBLIC_CLIENT, None);
        let env = Env::new();
        let subject_file = env.path().join("ci-token");
        let rig = Rig {
            env,
            idp,
            subject_file,
        };
        rig.write_subject(&rig.ci_token(PIPELINE, HOUR));
        rig
    }

    fn ci_token(&self, sub: &str, lifetime: Duration) -> String {
        self.idp.mint_ci_token(sub, AUDIENCE, lifetime)
    }

    /// Replaces the subject token file atomically, as a CI runner does.
    fn write_subject(&self, token: &str) {
        let tmp = self.subject_file.with_extension("new");
        std::fs::write(&tmp, token).unwrap();
        std::fs::rename(&tmp, &self.subject_file).unwrap();
    }

    fn subject(&self) -> String {
        std::fs::read_to_string(&self.subject_file).unwrap()
    }

    /// The provider flags of an exchange with the public client, the
    /// subject token from the file, asking for an id_token.
    fn flags(&self) -> Vec<String> {
        [
            "--token-url",
            &self.idp.dex_token_url(),
            "--grant",
            "token_exchange",
            "--client-id",
            PUBLIC_CLIENT,
            "--connector-id",
            CONNECTOR,
            "--requested-token-type",
            "id_token",
            "--subject-token-file",
            &self.subject_file.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// [`Rig::flags`] with some values replaced.
    fn flags_with(&self, replace: &[&str]) -> Vec<String> {
        let mut flags = self.flags();
        for pair in replace.chunks(2) {
            if let Some(i) = flags.iter().position(|f| f == pair[0]) {
                flags[i + 1] = pair[1].to_string();
            }
        }
        flags
    }

    /// `dexcred <sub> <flags> <extra>`.
    fn dexcred(&self, sub: &str, extra: &[&str]) -> Command {
        let mut cmd = self.env.dexcred([sub]);
        cmd.args(self.flags()).args(extra);
        cmd
    }

    fn token(&self, extra: &[&str]) -> Output {
        run_bounded(&mut self.dexcred("token", extra), DEADLINE)
    }

    fn exchanges(&self) -> Vec<RecordedRequest> {
        self.idp
            .requests()
            .into_iter()
            .filter(|r| {
                r.form_value("grant_type")
                    .is_some_and(|g| g.ends_with(":token-exchange"))
            })
            .collect()
    }

    /// Every file in the cache directory, as text.
    fn cache_text(&self) -> String {
        let mut all = String::new();
        if let Ok(dir) = std::fs::read_dir(self.env.cache_dir()) {
            for f in dir.flatten() {
                all.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
            }
        }
        all
    }
}

#[test]
fn the_issued_token_is_handed_out_cached_and_the_subject_token_never_stored() {
    let rig = Rig::new();
    let scope = ["--scope", "openid groups profile"];
    let token = ok(&rig.token(&scope)).trim().to_string();

    // Dex's answer carried the id_token in access_token: that is what we got.
    assert!(rig.idp.is_valid_token(&token));
    let claims = decode_payload(&token).unwrap();
    assert_eq!(claims["aud"], PUBLIC_CLIENT);
    assert_eq!(claims["preferred_username"], PIPELINE);
    let sent = rig.exchanges();
    assert_eq!(sent.len(), 1);
    let form = &sent[0];
    assert_eq!(form.form_value("subject_token").unwrap(), rig.subject());
    assert_eq!(form.form_value("subject_token_type"), Some(ID_TOKEN_URN));
    assert_eq!(form.form_value("requested_token_type"), Some(ID_TOKEN_URN));
    assert_eq!(form.form_value("connector_id"), Some(CONNECTOR));
    assert_eq!(form.form_value("client_id"), Some(PUBLIC_CLIENT));
    assert_eq!(form.form_value("client_secret"), None, "public client");
    assert_eq!(form.form_value("scope"), Some("openid groups profile"));

    // Cached: the next run asks nobody.
    let again = ok(&rig.token(&scope)).trim().to_string();
    assert_eq!(again, token);
    assert_eq!(rig.idp.counts().total, 1);

    // The entry holds the issued token and no refresh token; the subject
    // token is nowhere in the cache, its identity is in the key.
    let entry = read_entry(&rig.env.only_entry());
    assert_eq!(entry_token(&rig.env.only_entry(), "id_token"), Some(token));
    assert!(entry.get("refresh_token").is_none(), "{entry}");
    assert_eq!(entry["key"]["grant"], "token_exchange");
    assert_eq!(entry["key"]["connector_id"], CONNECTOR);
    assert_eq!(
        entry["key"]["exchange"]["subject"],
        format!("{} {PIPELINE}", rig.idp.ci_issuer())
    );
    assert!(!rig.cache_text().contains(&rig.subject()));

    // -v never shows either token.
    let out = rig.token(&["-v", "--force-refresh", "--scope", "openid groups profile"]);
    let err = stderr(&out);
    let issued = stdout(&out).trim().to_string();
    assert!(
        !err.contains(&rig.subject()) && !err.contains(&issued),
        "{err}"
    );
    assert!(err.contains("exchanging subject token"), "{err}");
}

#[test]
fn near_expiry_exchanges_again_with_the_rotated_subject_token() {
    let rig = Rig::new();
    let first_subject = rig.subject();
    let first = ok(&rig.token(&[])).trim().to_string();

    // The CI system rotates the file; the cached token nears its expiry.
    let second_subject = rig.ci_token(PIPELINE, HOUR);
    assert_ne!(first_subject, second_subject);
    rig.write_subject(&second_subject);
    age_tokens(&rig.env.only_entry(), 5);

    let second = ok(&rig.token(&[])).trim().to_string();
    assert_ne!(first, second);
    let sent = rig.exchanges();
    assert_eq!(sent.len(), 2, "one exchange per renewal, no refresh grant");
    assert_eq!(
        sent[1].form_value("subject_token"),
        Some(second_subject.as_str())
    );
    assert_eq!(rig.idp.counts().refresh_grant, 0);
    // Same pipeline identity: still one entry.
    rig.env.only_entry();
}

#[test]
fn an_expired_subject_token_fails_with_one_line_and_no_request() {
    let rig = Rig::new();
    rig.write_subject(&rig.ci_token(PIPELINE, Duration::ZERO));
    let line = fails_with(&rig.token(&[]), 3);
    assert!(line.contains("the subject token from the file"), "{line}");
    assert!(line.contains("expired at"), "{line}");
    assert_eq!(rig.idp.counts().total, 0, "caught locally");

    // One the server rejects (wrong audience): one request, one line.
    rig.write_subject(&rig.idp.mint_ci_token(PIPELINE, "someone-else", HOUR));
    let line = fails_with(&rig.token(&[]), 3);
    assert!(line.contains("access_denied"), "{line}");
    assert!(line.contains("rejected the subject token"), "{line}");
    assert_eq!(rig.idp.counts().token_exchange, 1, "no retry loop");
    assert!(rig.env.cache_entries().is_empty());
}

/// Flags to replace, a fault to inject, the exit code, words of the message.
type RefusalCase<'a> = (Vec<&'a str>, Option<Fault>, i32, &'a [&'a str]);

/// Extra flags, environment, the exit code, words of the message.
type UsageCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, i32, &'a str);

#[test]
fn dex_refusals_map_to_exit_codes_and_hints() {
    let rig = Rig::new();
    rig.idp.add_exchange_connector("ldap", AUDIENCE, false);

    let cases: Vec<RefusalCase> = vec![
        (
            vec!["--connector-id", "nope"],
            None,
            3,
            &[
                "Requested connector does not exist.",
                "check --connector-id",
            ],
        ),
        (
            vec!["--connector-id", "ldap"],
            None,
            3,
            &["does not support token exchange", "check --connector-id"],
        ),
        (
            vec!["--client-id", DEX_CLIENT],
            None,
            3,
            &["invalid_client", "check --client-id"],
        ),
        (
            vec![],
            Some(Fault::new(
                "/dex/token",
                1,
                Reply::json(400, &serde_json::json!({"error": "unsupported_grant_type"})),
            )),
            3,
            &["unsupported_grant_type", "does not offer token exchange"],
        ),
        (
            vec![],
            Some(Fault::new(
                "/dex/token",
                1,
                Reply::json(500, &serde_json::json!({"error": "server_error"})),
            )),
            4,
            &["HTTP 500"],
        ),
    ];
    for (extra, fault, code, words) in cases {
        rig.idp.reset_counts();
        if let Some(f) = fault {
            rig.idp.inject(f);
        }
        let mut cmd = rig.env.dexcred(["token"]);
        cmd.args(rig.flags_with(&extra));
        let line = fails_with(&run_bounded(&mut cmd, DEADLINE), code);
        for w in words {
            assert!(line.contains(w), "{extra:?}: {line}");
        }
        assert!(!line.contains(&rig.subject()), "{line}");
        assert_eq!(rig.idp.counts().total, 1, "{extra:?}: exactly one request");
    }
    assert!(rig.env.cache_entries().is_empty());
}

#[test]
fn bad_invocations_fail_before_any_request() {
    let rig = Rig::new();
    let idp = rig.idp.dex_token_url();
    let file = rig.subject_file.display().to_string();
    let base = [
        "token",
        "--token-url",
        &idp,
        "--grant",
        "token_exchange",
        "--client-id",
        PUBLIC_CLIENT,
    ];
    let cases: Vec<UsageCase> = vec![
        (
            vec!["--subject-token-file", &file],
            vec![],
            2,
            "needs --connector-id",
        ),
        (
            vec!["--connector-id", CONNECTOR],
            vec![],
            2,
            "needs a subject token",
        ),
        (
            vec!["--connector-id", CONNECTOR, "--subject-token-file", &file],
            vec![("DEXCRED_SUBJECT_TOKEN", "x.y.z")],
            2,
            "choose one subject token source",
        ),
        (
            vec![
                "--connector-id",
                CONNECTOR,
                "--subject-token-file",
                "/nonexistent/t",
            ],
            vec![],
            5,
            "cannot read the subject token file",
        ),
        (
            vec![
                "--connector-id",
                CONNECTOR,
                "--subject-token-source",
                "github-actions",
            ],
            vec![],
            2,
            "id-token: write",
        ),
        (
            vec![
                "--connector-id",
                CONNECTOR,
                "--subject-token-file",
                &file,
                "--username",
                "u",
            ],
            vec![],
            2,
            "remove it",
        ),
    ];
    for (extra, vars, code, words) in cases {
        let mut cmd = rig.env.dexcred(base);
        cmd.args(&extra).envs(vars);
        let line = fails_with(&run_bounded(&mut cmd, DEADLINE), code);
        assert!(line.contains(words), "{extra:?}: {line}");
    }
    assert_eq!(rig.idp.counts().total, 0);
}

#[test]
fn parallel_cold_starts_make_one_exchange() {
    const N: usize = 8;
    let rig = Rig::new();
    // A slow Dex widens the window in which all of them find no entry.
    rig.idp.inject(Fault::new(
        "/dex/token",
        1,
        Reply::delay(Duration::from_millis(500), Reply::passthrough()),
    ));
    let children: Vec<_> = (0..N)
        .map(|_| spawn_with_input(&mut rig.dexcred("token", &[]), None))
        .collect();
    let tokens: BTreeSet<String> = children
        .into_iter()
        .map(|c| ok(&c.wait_with_output().unwrap()).trim().to_string())
        .collect();
    assert_eq!(tokens.len(), 1, "all {N} got the same token");
    assert_eq!(
        rig.idp.counts().token_exchange,
        1,
        "{N} processes, one exchange"
    );
}

#[test]
fn different_pipelines_never_share_an_entry() {
    let rig = Rig::new();
    let run_as = |sub: &str| {
        let mut cmd = rig.env.dexcred(["token"]);
        let flags: Vec<String> = rig
            .flags()
            .into_iter()
            .take_while(|f| f != "--subject-token-file")
            .collect();
        cmd.args(flags)
            .env("DEXCRED_SUBJECT_TOKEN", rig.ci_token(sub, HOUR));
        ok(&run_bounded(&mut cmd, DEADLINE)).trim().to_string()
    };
    let a = run_as(PIPELINE);
    let b = run_as(OTHER_PIPELINE);
    assert_ne!(a, b);
    assert_eq!(rig.idp.token_user(&a).as_deref(), Some(PIPELINE));
    assert_eq!(rig.idp.token_user(&b).as_deref(), Some(OTHER_PIPELINE));
    assert_eq!(rig.env.cache_entries().len(), 2);
    // A new subject token for the first pipeline: its cached entry.
    assert_eq!(run_as(PIPELINE), a);
    assert_eq!(rig.idp.counts().token_exchange, 2);
}

#[test]
fn github_actions_subject_tokens_come_from_the_runner() {
    let rig = Rig::new();
    let github = |request_token: &str| {
        let mut cmd = rig.env.dexcred([
            "token",
            "--token-url",
            &rig.idp.dex_token_url(),
            "--grant",
            "token_exchange",
            "--client-id",
            PUBLIC_CLIENT,
            "--connector-id",
            CONNECTOR,
            "--subject-token-source",
            "github-actions",
            "--audience",
            AUDIENCE,
        ]);
        cmd.env("ACTIONS_ID_TOKEN_REQUEST_URL", rig.idp.github_actions_url())
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token);
        run_bounded(&mut cmd, DEADLINE)
    };

    // The runner refuses a wrong request token; Dex is never asked.
    let line = fails_with(&github("not-the-token"), 3);
    assert!(line.contains("id-token: write"), "{line}");
    assert_eq!(rig.idp.counts().github_id_token, 1);
    assert_eq!(rig.idp.counts().token_exchange, 0);

    let token = ok(&github(&rig.idp.github_request_token()))
        .trim()
        .to_string();
    assert_eq!(rig.idp.token_user(&token).as_deref(), Some(GITHUB_SUBJECT));
    let fetch = rig
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/_github/idtoken" && r.query.contains("audience="))
        .expect("GitHub token request");
    assert!(
        fetch.query.starts_with("api-version=2.0&audience="),
        "{}",
        fetch.query
    );
    let exchange = &rig.exchanges()[0];
    assert_eq!(exchange.form_value("audience"), Some(AUDIENCE));
    let subject = exchange.form_value("subject_token").unwrap();
    assert_eq!(decode_payload(subject).unwrap()["aud"], AUDIENCE);
    assert!(!rig.cache_text().contains(subject));
}

#[test]
fn pcd_exchange_uses_dex_under_the_deployment_with_the_clients_secret() {
    let rig = Rig::new();
    let secret = rig.idp.client_secret(DEX_CLIENT).unwrap();
    let flags = [
        "token",
        "--pcd",
        &rig.idp.url(),
        "--grant",
        "token_exchange",
        "--connector-id",
        CONNECTOR,
        "--subject-token-file",
        &rig.subject_file.display().to_string(),
    ];
    // Without the secret: Dex refuses the client, and the hint says what to add.
    let line = fails_with(&run_bounded(&mut rig.env.dexcred(flags), DEADLINE), 3);
    assert!(line.contains("DEXCRED_CLIENT_SECRET"), "{line}");
    let mut cmd = rig.env.dexcred(flags);
    cmd.env("DEXCRED_CLIENT_SECRET", &secret);
    let token = ok(&run_bounded(&mut cmd, DEADLINE)).trim().to_string();
    assert_eq!(decode_payload(&token).unwrap()["aud"], DEX_CLIENT);
    assert_eq!(rig.idp.counts().keystone, 0, "no password, no Keystone");
    let entry = read_entry(&rig.env.only_entry());
    assert!(entry.get("client_secret").is_none(), "{entry}");
    assert!(
        entry.get("id_token").is_some(),
        "PCD hands out the id_token"
    );
}

#[test]
fn login_and_status_describe_the_exchange() {
    let rig = Rig::new();
    let out = ok(&run_bounded(
        &mut rig.dexcred("login", &["--scope", "openid profile"]),
        DEADLINE,
    ));
    assert!(
        out.contains("renewal exchanges a fresh subject token"),
        "{out}"
    );
    assert!(out.contains(PIPELINE), "{out}");
    let status = ok(&run_bounded(
        &mut rig.env.dexcred(["status", "--json"]),
        DEADLINE,
    ));
    assert!(status.contains(PIPELINE), "{status}");
    assert!(!status.contains(&rig.subject()));

    // logout --all rebuilds the exchange from the entry alone and deletes it.
    let out = ok(&run_bounded(
        &mut rig.env.dexcred(["logout", "--all"]),
        DEADLINE,
    ));
    assert!(rig.env.cache_entries().is_empty(), "{out}");
    assert_eq!(
        rig.idp.counts().token_exchange,
        1,
        "logout exchanges nothing"
    );
}

#[test]
fn issuer_discovery_finds_the_dex_token_endpoint() {
    let rig = Rig::new();
    let issuer = format!("{}/dex", rig.idp.url());
    let args: Vec<String> = std::iter::once("token".to_string())
        .chain(
            rig.flags_with(&["--token-url", &issuer])
                .into_iter()
                .map(|a| {
                    if a == "--token-url" {
                        "--issuer".into()
                    } else {
                        a
                    }
                }),
        )
        .collect();
    let token = ok(&run_bounded(&mut rig.env.dexcred(&args), DEADLINE))
        .trim()
        .to_string();
    assert!(rig.idp.is_valid_token(&token));
    let counts = rig.idp.counts();
    assert_eq!((counts.discovery, counts.token_exchange), (1, 1));
    // Renewal uses the saved endpoint: no second discovery.
    age_tokens(&rig.env.only_entry(), 5);
    ok(&run_bounded(&mut rig.env.dexcred(&args), DEADLINE));
    let counts = rig.idp.counts();
    assert_eq!((counts.discovery, counts.token_exchange), (1, 2));
}

/// `dexcred kubeconfig` writes an exec entry with the exchange flags (the
/// subject token file by absolute path, never a token); real kubectl 1.32
/// then reads the API stub with the exchanged token.
#[test]
fn kubectl_1_32_uses_exchanged_tokens_through_a_generated_kubeconfig() {
    let rig = Rig::new();
    let kube = KubeApi::start(rig.idp.clone(), &TestCa::new());
    let kubeconfig = rig.env.path().join("kubeconfig");
    let mut write = rig.dexcred(
        "kubeconfig",
        &[
            "--server",
            &kube.url(),
            "--cluster-certificate-authority",
            &kube.ca_pem_path().display().to_string(),
            "--name",
            "ci",
            "--write",
        ],
    );
    write.env("KUBECONFIG", &kubeconfig);
    ok(&run_bounded(&mut write, DEADLINE));
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("--subject-token-file"), "{text}");
    assert!(text.contains("token_exchange"), "{text}");
    assert!(!text.contains(&rig.subject()));

    for _ in 0..2 {
        let mut get = Command::new(kubectl("1.32"));
        rig.env.apply(&mut get);
        get.env("KUBECONFIG", &kubeconfig).args([
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
        ]);
        let out = ok(&run_bounded(&mut get, DEADLINE));
        assert!(out.contains("PodList"), "{out}");
    }
    let seen = kube.seen_tokens();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(rig.idp.token_user(&seen[0]).as_deref(), Some(PIPELINE));
    assert_eq!(
        rig.idp.counts().token_exchange,
        1,
        "the second kubectl hit the cache"
    );
}

#[test]
fn git_clones_with_an_exchanged_token() {
    let rig = Rig::new();
    let server = GitServer::start(rig.idp.clone(), None, GitAuth::default());
    let gitconfig = rig.env.path().join("gitconfig");
    std::fs::write(
        &gitconfig,
        format!(
            "[user]\n\tname = CI\n\temail = ci@example.com\n[credential]\n\thelper =\n\
             [credential \"{}\"]\n\thelper = \"dexcred {}\"\n",
            server.url(),
            rig.flags().join(" ")
        ),
    )
    .unwrap();
    for (git, dir) in [(git_new(), "new"), (git_old(), "old")] {
        let mut cmd = Command::new(git);
        rig.env.apply(&mut cmd);
        cmd.current_dir(rig.env.path())
            .env("GIT_CONFIG_GLOBAL", &gitconfig)
            .args(["clone", "-q", &server.repo_url(), dir]);
        ok(&run_bounded(&mut cmd, DEADLINE));
        assert!(rig.env.path().join(dir).join(".git").is_dir());
    }
    assert!(server.auth_log().iter().any(|e| e.accepted));
    assert_eq!(
        rig.idp.counts().token_exchange,
        1,
        "git 2.47 and 2.39 shared the entry"
    );
}

/// `dexcred token --format curl | curl -K - …`: real curl reads the header
/// from its config on stdin and the HTTPS API stub accepts the token.
#[test]
fn curl_reads_the_token_from_stdin() {
    let rig = Rig::new();
    let kube = KubeApi::start(rig.idp.clone(), &TestCa::new());
    let out = ok(&rig.token(&["--format", "curl"]));
    assert!(
        out.starts_with("header = \"Authorization: Bearer "),
        "{out}"
    );
    assert!(out.ends_with("\"\n"), "{out}");
    let out = curl_with_config(&kube, &out);
    assert!(out.contains("PodList"), "{out}");
}

fn curl_with_config(kube: &KubeApi, config: &str) -> String {
    let mut curl = Command::new("/usr/bin/curl");
    curl.args(["-sS", "--fail", "-K", "-", "--cacert"])
        .arg(kube.ca_pem_path())
        .arg(format!("{}/api/v1/namespaces/default/pods", kube.url()));
    let child = spawn_with_input(&mut curl, Some(config));
    ok(&child.wait_with_output().unwrap())
}

/// While shell pipelines feed curl and kubectl with tokens (exchanged
/// tokens and a PAT), no process on the machine has a token, a subject
/// token or the PAT in its command line.
#[test]
fn no_token_ever_reaches_a_command_line() {
    let rig = Rig::new();
    let kube = KubeApi::start(rig.idp.clone(), &TestCa::new());
    let pat = "ocp-pat-0123456789abcdef";
    let pat_file = rig.env.path().join("pat");
    std::fs::write(&pat_file, format!("{pat}\n")).unwrap();
    let flags = rig.flags().join(" ");
    let url = format!("{}/api/v1/namespaces/default/pods", kube.url());
    let kubeconfig = rig.env.path().join("kubeconfig");
    let mut write = rig.dexcred(
        "kubeconfig",
        &[
            "--server",
            &kube.url(),
            "--cluster-certificate-authority",
            &kube.ca_pem_path().display().to_string(),
            "--write",
        ],
    );
    write.env("KUBECONFIG", &kubeconfig);
    ok(&run_bounded(&mut write, DEADLINE));
    let ca = kube.ca_pem_path().display().to_string();
    let script = format!(
        "set -e\n\
         dexcred token --format curl {flags} | curl -sS --fail -K - --cacert {ca} {url} >/dev/null\n\
         dexcred token --force-refresh --format curl {flags} | curl -sS --fail -K - --cacert {ca} {url} >/dev/null\n\
         {kubectl} --kubeconfig {kubeconfig} get --raw /api/v1/namespaces/default/pods >/dev/null\n\
         dexcred token --pat-file {pat} --header-name X-OCP-PERSONAL-ACCESS-TOKEN --format curl \
           | curl -sS -K - {idp}/pat-check >/dev/null || true\n",
        pat = pat_file.display(),
        idp = rig.idp.url(),
        kubectl = kubectl("1.32").display(),
        kubeconfig = kubeconfig.display(),
    );
    // Slow exchanges keep the pipelines alive while we watch.
    rig.idp.inject(Fault::new(
        "/dex/token",
        2,
        Reply::delay(Duration::from_millis(700), Reply::passthrough()),
    ));
    let mut sh = Command::new("/bin/sh");
    rig.env.apply(&mut sh);
    sh.args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = sh.spawn().unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        seen.extend(all_command_lines().into_iter().map(|(_, line)| line));
        assert!(started.elapsed() < DEADLINE, "the pipelines hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    ok(&out);
    assert!(
        seen.iter().any(|l| l.contains("curl -sS --fail -K -")),
        "the watcher saw the pipelines run"
    );

    // The PAT reached the server in its header, from curl's stdin config.
    let pat_request = rig
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/pat-check")
        .expect("curl sent the PAT request");
    assert_eq!(pat_request.header("X-OCP-PERSONAL-ACCESS-TOKEN"), Some(pat));

    let mut secrets: Vec<String> = kube.seen_tokens();
    assert_eq!(secrets.len(), 2, "two exchanged tokens were used");
    secrets.push(rig.subject());
    secrets.push(pat.to_string());
    for line in &seen {
        for s in &secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret is in a command line: {line}"
            );
        }
    }
}

#[test]
fn personal_access_tokens_come_out_exactly_as_ocp_asks_and_are_never_cached() {
    let env = Env::new();
    let pat = "pat_AbC123-xyz";
    let file = env.path().join("pat");
    std::fs::write(&file, format!("{pat}\n")).unwrap();
    let file = file.display().to_string();
    let header = ["--header-name", "X-OCP-PERSONAL-ACCESS-TOKEN"];

    let from_file = env
        .dexcred(["token", "--pat-file", &file, "--format", "header"])
        .args(header)
        .output()
        .unwrap();
    assert_eq!(
        ok(&from_file),
        format!("X-OCP-PERSONAL-ACCESS-TOKEN: {pat}\n")
    );
    let from_env = env
        .dexcred(["token", "--pat", "--format", "curl"])
        .args(header)
        .env("DEXCRED_PAT", pat)
        .output()
        .unwrap();
    assert_eq!(
        ok(&from_env),
        format!("header = \"X-OCP-PERSONAL-ACCESS-TOKEN: {pat}\"\n")
    );
    let from_command = env
        .dexcred(["token", "--pat-command", &format!("cat '{file}'")])
        .output()
        .unwrap();
    assert_eq!(ok(&from_command), format!("{pat}\n"));
    assert!(!env.cache_dir().exists(), "a PAT never touches the cache");

    // No source and no terminal: one line, exit 3 (never a hang).
    let line = fails_with(
        &run_bounded(&mut env.dexcred(["token", "--pat"]), DEADLINE),
        3,
    );
    assert!(line.contains("DEXCRED_PAT"), "{line}");
    // A PAT with a provider is a usage error.
    let line = fails_with(
        &env.dexcred(["token", "--pat", "--pcd", "https://pcd.example"])
            .env("DEXCRED_PAT", pat)
            .output()
            .unwrap(),
        2,
    );
    assert!(!line.contains(pat), "{line}");
}

#[test]
fn a_bad_header_name_is_refused_before_anything_else() {
    let rig = Rig::new();
    for bad in ["X OCP", "X-OCP:", "X\u{e4}", "X\"Y"] {
        let line = fails_with(&rig.token(&["--header-name", bad, "--format", "header"]), 2);
        assert!(line.contains("--header-name"), "{bad:?}: {line}");
    }
    assert_eq!(rig.idp.counts().total, 0);
    assert!(rig.env.cache_entries().is_empty());
    // A good one applies to exchanged tokens too.
    let out = ok(&rig.token(&["--header-name", "X-Auth-Token", "--format", "header"]));
    assert!(out.starts_with("X-Auth-Token: ey"), "{out}");
}
