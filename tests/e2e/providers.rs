//! End to end: every token service of the reference documents, served by the
//! testkit's `FakeIdp`, through the real dexcred binary.
//!
//! - Keycloak (OCP IAM) password grant with a one-time code: `otp` from
//!   `DEXCRED_OTP` or `--otp-command`, Keycloak's "Invalid user credentials"
//!   for a missing or wrong code, renewal by refresh token (no new session,
//!   so the five-session limit is never reached), logout at the server.
//! - Client credentials with the secret in the form (Keycloak) and in HTTP
//!   Basic (the `/api/id/v1/auth/token` service, whose errors use
//!   `errorDescription`).
//! - Dex (PCD), which has no logout endpoint.
//! - `dexcred token --format raw|header|json`, and curl using the header.
//! - OpenID discovery with `--issuer`, cached in the entry.
//!
//! Every test checks what a user would: exit code, the one stderr line,
//! stdout, the IdP's request counters and recorded requests, the cache file.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::git::{AuthScheme, GitAuth, GitServer};
use dexcred_testkit::http::Reply;
use dexcred_testkit::idp::{
    FakeIdp, Fault, KEYCLOAK_PUBLIC_CLIENT, RecordedRequest, SERVICE_CLIENT, SERVICE_CLIENT_SECRET,
    User,
};
use dexcred_testkit::kube::{ExecPlugin, KubeApi};
use dexcred_testkit::tls::TestCa;

const REALM: &str = "ocp";

/// Provider flags for Keycloak client credentials (secret in the form, the
/// default `--client-auth post`).
fn keycloak_service(idp: &FakeIdp) -> Vec<String> {
    vec![
        "--token-url".into(),
        idp.keycloak_token_url(REALM),
        "--client-id".into(),
        SERVICE_CLIENT.into(),
    ]
}

/// Provider flags for the HTTP Basic client-credentials service.
fn basic_service(idp: &FakeIdp) -> Vec<String> {
    vec![
        "--token-url".into(),
        idp.client_credentials_url(),
        "--client-id".into(),
        SERVICE_CLIENT.into(),
        "--client-auth".into(),
        "basic-raw".into(),
        "--scope".into(),
        "openid email profile".into(),
    ]
}

/// `dexcred token <flags> <extra>` in `env`.
fn token_cmd(env: &Env, flags: &[String], extra: &[&str]) -> Command {
    let mut cmd = env.dexcred(["token"]);
    cmd.args(flags).args(extra);
    cmd
}

/// Runs `dexcred token` with alice's password in the environment.
fn token_with_password(env: &Env, flags: &[String], extra: &[&str]) -> Output {
    run(token_cmd(env, flags, extra).env("DEXCRED_PASSWORD", ALICE_PASSWORD))
}

/// Runs `dexcred token` with the service client's secret in the environment.
fn token_as_service(env: &Env, flags: &[String], extra: &[&str]) -> Output {
    run(token_cmd(env, flags, extra).env("DEXCRED_CLIENT_SECRET", SERVICE_CLIENT_SECRET))
}

/// The printed token of a successful `--format raw` run.
fn raw_token(out: &Output) -> String {
    let text = ok(out);
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "{text:?}"
    );
    text.trim_end().to_string()
}

/// Token-endpoint requests with the given grant type, in order.
fn grants(idp: &FakeIdp, grant_type: &str) -> Vec<RecordedRequest> {
    idp.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.form_value("grant_type") == Some(grant_type))
        .collect()
}

fn alice_with_otp(codes: &[&str]) -> User {
    User::new(ALICE, ALICE_PASSWORD).with_otp(codes)
}

/// A file holding `text` on its first line, mode 0600.
fn secret_file(env: &Env, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = env.path().join(name);
    std::fs::write(&path, format!("{text}\n")).expect("write secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path.display().to_string()
}

// ---------------------------------------------------------------------------
// Keycloak password grant with a one-time code
// ---------------------------------------------------------------------------

#[test]
fn keycloak_sends_the_one_time_code_as_the_otp_field() {
    // (case, alice's code, extra flags, DEXCRED_OTP)
    let cases: [(&str, &str, &[&str], Option<&str>); 2] = [
        ("from DEXCRED_OTP", "246810", &[], Some("246810")),
        (
            "from --otp-command",
            "135791",
            &["--otp-command", "echo 135791"],
            None,
        ),
    ];
    for (name, code, extra, otp_var) in cases {
        case(name, || {
            let idp = FakeIdp::pcd();
            idp.add_user(alice_with_otp(&[code]));
            let env = Env::new();
            let mut cmd = token_cmd(&env, &keycloak_args(&idp), extra);
            cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
            if let Some(otp) = otp_var {
                cmd.env("DEXCRED_OTP", otp);
            }
            let out = run(&mut cmd);
            let token = raw_token(&out);

            let logins = grants(&idp, "password");
            assert_eq!(logins.len(), 1);
            assert_eq!(logins[0].form_value("otp"), Some(code));
            assert_eq!(
                logins[0].form_value("client_id"),
                Some(KEYCLOAK_PUBLIC_CLIENT)
            );
            assert_eq!(
                logins[0].form_value("client_secret"),
                None,
                "ocp is a public client"
            );
            // Keycloak's API wants the access_token, the default outside PCD.
            assert!(idp.is_valid_token(&token));
            assert_eq!(
                entry_token(&env.only_entry(), "access_token").as_deref(),
                Some(token.as_str())
            );
            assert_eq!(idp.active_sessions(ALICE), 1);
            // Nothing secret on stderr.
            assert!(!stderr(&out).contains(code));
        });
    }
}

#[test]
fn keycloak_missing_or_wrong_otp_fails_with_keycloaks_reason() {
    let idp = FakeIdp::pcd();
    idp.add_user(alice_with_otp(&["111111"]));
    let env = Env::new();
    let flags = keycloak_args(&idp);

    // No code configured, not interactive: Keycloak's refusal, exit 3.
    let line = fails_with(&token_with_password(&env, &flags, &[]), 3);
    assert!(line.contains("Invalid user credentials"), "{line}");
    assert!(line.contains("invalid_grant"), "{line}");

    // A wrong code: the same refusal.
    let out = run(token_cmd(&env, &flags, &[])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .env("DEXCRED_OTP", "999999"));
    let line = fails_with(&out, 3);
    assert!(line.contains("Invalid user credentials"), "{line}");
    assert!(
        !line.contains("999999") && !line.contains(ALICE_PASSWORD),
        "{line}"
    );

    let logins = grants(&idp, "password");
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].form_value("otp"), None);
    assert_eq!(logins[1].form_value("otp"), Some("999999"));
    assert_eq!(idp.active_sessions(ALICE), 0);
    // A failed login leaves no cache entry behind.
    assert!(env.cache_entries().is_empty());
}

#[test]
fn keycloak_renews_by_refresh_without_a_new_session() {
    let idp = FakeIdp::pcd();
    idp.add_user(alice_with_otp(&["424242"]));
    let env = Env::new();
    let flags = keycloak_args(&idp);

    let out = run(token_cmd(&env, &flags, &[])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .env("DEXCRED_OTP", "424242"));
    let first = raw_token(&out);
    let entry = env.only_entry();
    let refresh_before = read_entry(&entry)["refresh_token"].clone();

    // The access token reaches its refresh margin. The renewal needs
    // neither the password nor a one-time code (each code works once).
    age_tokens(&entry, 2);
    let second = raw_token(&run(&mut token_cmd(&env, &flags, &[])));

    assert_ne!(first, second);
    assert!(idp.is_valid_token(&second));
    let counts = idp.counts();
    assert_eq!(counts.password_grant, 1);
    assert_eq!(counts.refresh_grant, 1);
    assert_eq!(counts.refresh_rejected, 0);
    assert_eq!(idp.active_sessions(ALICE), 1, "a refresh keeps the session");
    // Keycloak issued a new refresh token; the entry keeps it.
    assert_ne!(read_entry(&entry)["refresh_token"], refresh_before);
    let refreshes = grants(&idp, "refresh_token");
    assert_eq!(
        refreshes[0].form_value("refresh_token"),
        refresh_before.as_str()
    );
}

#[test]
fn heavy_keycloak_session_count_stays_at_one_over_100_sequential_runs() {
    let idp = FakeIdp::pcd();
    // Short-lived access tokens (4 s, renewed 2 s before expiry), and
    // Keycloak's "revoke refresh token": any reuse of a refresh token kills
    // the session, so only strictly serialised renewals survive.
    idp.set_token_lifetime(Duration::from_secs(4));
    idp.set_keycloak_revoke_refresh_token(true);
    let env = Env::new();
    let flags = keycloak_args(&idp);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut runs = 0;
    // At least 100 runs, and on until several renewals happened mid-run.
    while runs < 100 || idp.counts().refresh_grant < 3 {
        assert!(Instant::now() < deadline, "no renewals after {runs} runs");
        let token = raw_token(&token_with_password(&env, &flags, &[]));
        assert!(
            idp.is_valid_token(&token),
            "run {runs} printed a dead token"
        );
        runs += 1;
        if runs >= 100 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let counts = idp.counts();
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(counts.refresh_rejected, 0, "{counts:?}");
    assert!(counts.refresh_grant >= 3, "{counts:?}");
    assert_eq!(idp.active_sessions(ALICE), 1);
}

#[test]
fn heavy_keycloak_session_count_stays_at_one_with_20_parallel_runs() {
    let idp = FakeIdp::pcd();
    // 8 s tokens are renewed 4 s before expiry: each wave of 20 has 4 s in
    // which the renewed token is fresh for all of them.
    idp.set_token_lifetime(Duration::from_secs(8));
    idp.set_keycloak_revoke_refresh_token(true);
    let env = Env::new();
    let flags = keycloak_args(&idp);

    let wave = |n: usize| -> Vec<String> {
        let children: Vec<_> = (0..n)
            .map(|_| {
                token_cmd(&env, &flags, &[])
                    .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn dexcred")
            })
            .collect();
        children
            .into_iter()
            .map(|c| raw_token(&c.wait_with_output().expect("wait for dexcred")))
            .collect()
    };

    // Wave 1: a cold start, 20 at once: one login.
    let tokens = wave(20);
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "one login, one token"
    );
    assert_eq!(idp.counts().password_grant, 1);

    // Waves 2 and 3: wait until the token is due for renewal by the clock
    // (no cache editing), then 20 at once again.
    let entry = env.only_entry();
    for round in 2..=3 {
        let due = read_entry(&entry)["access_token"]["expires_at"]
            .as_i64()
            .expect("expires_at")
            - 4;
        let deadline = Instant::now() + Duration::from_secs(30);
        while now() < due {
            assert!(Instant::now() < deadline, "token never became due");
            std::thread::sleep(Duration::from_millis(100));
        }
        let before = idp.counts().refresh_grant;
        let tokens = wave(20);
        for t in &tokens {
            assert!(idp.is_valid_token(t), "round {round}: a dead token");
        }
        assert!(
            idp.counts().refresh_grant > before,
            "round {round}: no renewal"
        );
    }

    let counts = idp.counts();
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(counts.refresh_rejected, 0, "{counts:?}");
    assert_eq!(idp.active_sessions(ALICE), 1);
}

// ---------------------------------------------------------------------------
// Client credentials
// ---------------------------------------------------------------------------

#[test]
fn client_credentials_with_the_secret_in_the_form() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = keycloak_service(&idp);

    let out = token_as_service(&env, &flags, &["--extra-param", "audience=api"]);
    let token = raw_token(&out);
    assert!(idp.is_valid_token(&token));

    let requests = grants(&idp, "client_credentials");
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(!r.used_basic_auth());
    assert_eq!(r.form_value("client_id"), Some(SERVICE_CLIENT));
    assert_eq!(r.form_value("client_secret"), Some(SERVICE_CLIENT_SECRET));
    assert_eq!(r.form_value("audience"), Some("api"));
    // The default grant without --username is client_credentials.
    assert_eq!(
        read_entry(&env.only_entry())["key"]["grant"],
        "client_credentials"
    );
    // No refresh token from Keycloak here, and none needed.
    assert!(read_entry(&env.only_entry()).get("refresh_token").is_none());
}

#[test]
fn client_credentials_with_http_basic() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = basic_service(&idp);
    let file = secret_file(&env, "client-secret", SERVICE_CLIENT_SECRET);

    let out = run(&mut token_cmd(
        &env,
        &flags,
        &["--client-secret-file", &file],
    ));
    let token = raw_token(&out);
    assert!(idp.is_valid_token(&token));

    let requests = grants(&idp, "client_credentials");
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    // The secret (with `:+/ %&`) travelled only in the Basic header,
    // form-urlencoded before base64, which this server decodes.
    assert!(r.used_basic_auth());
    assert_eq!(r.form_value("client_secret"), None);
    assert_eq!(r.form_value("client_id"), None);
    assert_eq!(r.form_value("scope"), Some("openid email profile"));
    // The document's response carries expires_in 604800 and a JWT access
    // token whose exp matches.
    let entry = read_entry(&env.only_entry());
    let lifetime = entry["access_token"]["expires_at"].as_i64().unwrap()
        - entry["access_token"]["issued_at"].as_i64().unwrap();
    assert_eq!(lifetime, 604_800);
}

#[test]
fn client_credentials_renew_by_asking_again_not_by_refresh() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = basic_service(&idp);

    let first = raw_token(&token_as_service(&env, &flags, &[]));
    // The Basic service returns a refresh_token too; dexcred still renews
    // client-credentials tokens with the grant itself (RFC 6749 §4.4.3).
    age_tokens(&env.only_entry(), 2);
    let second = raw_token(&token_as_service(&env, &flags, &[]));
    assert_ne!(first, second);
    let counts = idp.counts();
    assert_eq!(counts.client_credentials, 2);
    assert_eq!(counts.refresh_grant, 0);
}

/// A refused or unusable answer, and what the one error line must say.
struct FailureCase {
    name: &'static str,
    /// Arranges the server's side.
    setup: fn(&FakeIdp),
    flags: fn(&FakeIdp) -> Vec<String>,
    extra: &'static [&'static str],
    client_secret: &'static str,
    code: i32,
    says: &'static [&'static str],
    never_says: &'static [&'static str],
    /// Whether the answer was a login after all, which the cache keeps.
    cached: bool,
}

const FAILURES: &[FailureCase] = &[
    FailureCase {
        // 403 {"error":"Forbidden","errorDescription":"permission denied"}
        name: "the Basic service's errorDescription",
        setup: |idp| idp.set_client_scopes(SERVICE_CLIENT, Some(&["openid"])),
        flags: basic_service,
        extra: &[],
        client_secret: SERVICE_CLIENT_SECRET,
        code: 3,
        says: &["Forbidden: permission denied", "403"],
        never_says: &[],
        cached: false,
    },
    FailureCase {
        // 401 with a wrong secret: the server's own words, and a hint.
        name: "a wrong secret at the Basic service",
        setup: |_| {},
        flags: |idp| {
            let mut flags = basic_service(idp);
            flags.truncate(flags.len() - 2);
            flags.extend(["--scope".to_string(), "openid".to_string()]);
            flags
        },
        extra: &[],
        client_secret: "wrong secret",
        code: 3,
        says: &["invalid client credentials"],
        never_says: &["wrong secret"],
        cached: false,
    },
    FailureCase {
        name: "an HTML error page becomes its title",
        setup: |idp| {
            let page = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n\
                <body><center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center></body></html>\n";
            idp.inject(Fault::new(
                &format!("/auth/realms/{REALM}/protocol/openid-connect/token"),
                1,
                Reply::text(502, "text/html", page),
            ));
        },
        flags: keycloak_service,
        extra: &[],
        client_secret: SERVICE_CLIENT_SECRET,
        code: 4,
        says: &["502 Bad Gateway"],
        never_says: &["<"],
        cached: false,
    },
    FailureCase {
        // Keycloak issues no id_token for client credentials without `openid`.
        name: "--token-field id_token absent from a client-credentials answer",
        setup: |_| {},
        flags: keycloak_service,
        extra: &["--token-field", "id_token"],
        client_secret: SERVICE_CLIENT_SECRET,
        code: 4,
        says: &["no id_token", "--token-field"],
        never_says: &[],
        cached: true,
    },
    FailureCase {
        name: "an issuer with a broken discovery document",
        setup: |_| {},
        flags: |idp| {
            vec![
                "--issuer".into(),
                format!("{}/auth/realms/nope", idp.url()),
                "--client-id".into(),
                SERVICE_CLIENT.into(),
            ]
        },
        extra: &[],
        client_secret: SERVICE_CLIENT_SECRET,
        code: 4,
        says: &["discovery", "--issuer"],
        never_says: &[],
        cached: false,
    },
];

#[test]
fn a_refused_or_unusable_answer_is_one_line_naming_the_cause() {
    for c in FAILURES {
        case(c.name, || {
            let idp = FakeIdp::pcd();
            let env = Env::new();
            (c.setup)(&idp);
            let flags = (c.flags)(&idp);
            let out =
                run(token_cmd(&env, &flags, c.extra).env("DEXCRED_CLIENT_SECRET", c.client_secret));
            let line = fails_with(&out, c.code);
            for text in c.says {
                assert!(line.contains(text), "{line}");
            }
            for text in c.never_says {
                assert!(!line.contains(text), "{line}");
            }
            // A failed login leaves no cache entry behind.
            assert_eq!(env.cache_entries().len(), usize::from(c.cached));
        });
    }
}

#[test]
fn token_field_id_token_of_a_client_credentials_response_with_openid() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    // With openid in scope Keycloak issues an id_token, and that is what is
    // printed (without it: `a_refused_or_unusable_answer_…`).
    let out = token_as_service(
        &env,
        &keycloak_service(&idp),
        &["--token-field", "id_token", "--scope", "openid"],
    );
    let token = raw_token(&out);
    let claims = dexcred_testkit::idp::decode_payload(&token).expect("a JWT");
    assert_eq!(claims["typ"], "ID");
}

// ---------------------------------------------------------------------------
// dexcred token output formats, and curl
// ---------------------------------------------------------------------------

#[test]
fn token_formats_raw_header_json_share_one_cached_token() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = keycloak_args(&idp);

    let raw = raw_token(&token_with_password(&env, &flags, &["--format", "raw"]));
    let header = ok(&token_with_password(&env, &flags, &["--format", "header"]));
    assert_eq!(header, format!("Authorization: Bearer {raw}\n"));
    let json_text = ok(&token_with_password(&env, &flags, &["--format", "json"]));
    assert_eq!(json_text.lines().count(), 1);
    let json: serde_json::Value = serde_json::from_str(&json_text).expect("JSON output");
    assert_eq!(json["token"], raw.as_str());
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["token_field"], "access_token");
    let expiry_unix = json["expiry_unix"].as_i64().expect("expiry_unix");
    let expiry = json["expiry"].as_str().expect("expiry");
    assert_eq!(
        expiry,
        dexcred::protocol::kubectl::rfc3339(expiry_unix).unwrap()
    );
    // The advertised expiry is before the token's real one (the refresh
    // margin) and in the future.
    let real = read_entry(&env.only_entry())["access_token"]["expires_at"]
        .as_i64()
        .unwrap();
    assert!(expiry_unix < real && expiry_unix > now(), "{json}");
    // One login served all three.
    assert_eq!(idp.counts().password_grant, 1);
    assert_eq!(idp.counts().total, 1);

    // DEXCRED_FORMAT works like the flag.
    let out = run(token_cmd(&env, &flags, &[]).env("DEXCRED_FORMAT", "header"));
    assert_eq!(ok(&out), header);
}

#[test]
fn curl_uses_the_header_from_dexcred_token() {
    let idp = FakeIdp::pcd();
    let ca = TestCa::new();
    let kube = KubeApi::start(idp.clone(), &ca);
    let env = Env::new();
    let token_url = idp.keycloak_token_url(REALM);
    let script = format!(
        "dexcred token --format curl --token-url '{token_url}' --client-id {client} --username {user} \
         | curl -sS --fail --cacert '{ca}' -K - '{api}/version'",
        ca = kube.ca_pem_path().display(),
        client = KEYCLOAK_PUBLIC_CLIENT,
        user = ALICE,
        api = kube.url(),
    );
    let mut cmd = Command::new("sh");
    env.apply(&mut cmd);
    let out = run(cmd
        .args(["-c", &script])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD));
    let body = ok(&out);
    let version: serde_json::Value = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(version["major"], "1");

    let seen = kube.seen_tokens();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        entry_token(&env.only_entry(), "access_token").as_ref(),
        Some(&seen[0])
    );

    // The stub really checks the bearer: without the header curl fails.
    let mut cmd = Command::new("curl");
    env.apply(&mut cmd);
    let out = run(cmd.args([
        "-sS",
        "--fail",
        "--cacert",
        &kube.ca_pem_path().display().to_string(),
        &format!("{}/version", kube.url()),
    ]));
    assert!(!out.status.success());
}

// ---------------------------------------------------------------------------
// Real kubectl and git with the non-PCD providers (docs/providers.md)
// ---------------------------------------------------------------------------

#[test]
fn kubectl_with_a_keycloak_password_and_otp_exec_entry() {
    let idp = FakeIdp::pcd();
    idp.add_user(alice_with_otp(&["314159"]));
    let ca = TestCa::new();
    let kube = KubeApi::start(idp.clone(), &ca);
    let env = Env::new();
    // The exec entry of docs/providers.md, Keycloak section.
    let mut args: Vec<&str> = vec!["kubectl"];
    let flags = keycloak_args(&idp);
    args.extend(flags.iter().map(String::as_str));
    args.extend(["--otp-command", "echo 314159"]);
    let plugin = ExecPlugin::new("dexcred", &args);
    let kubeconfig = env.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube.kubeconfig_with_exec(&plugin)).expect("write kubeconfig");

    for _ in 0..2 {
        let mut cmd = Command::new(kubectl("1.33"));
        env.apply(&mut cmd);
        cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "pods", "--request-timeout=30s"]);
        let out = run(&mut cmd);
        assert!(
            out.status.success() && stdout(&out).contains("demo"),
            "kubectl failed\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
    }
    // One login (the one-time code works once), one session, and the API
    // saw Keycloak's access token.
    assert_eq!(idp.counts().password_grant, 1);
    assert_eq!(idp.active_sessions(ALICE), 1);
    let seen = kube.seen_tokens();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        entry_token(&env.only_entry(), "access_token").as_ref(),
        Some(&seen[0])
    );
}

#[test]
fn git_with_a_client_credentials_helper_line() {
    let idp = FakeIdp::pcd();
    let server = GitServer::start(idp.clone(), None, GitAuth::default());
    let env = Env::new();
    let secret = secret_file(&env, "client-secret", SERVICE_CLIENT_SECRET);
    // The helper line of docs/providers.md, Basic client-credentials section.
    let gitconfig = env.path().join("gitconfig");
    std::fs::write(
        &gitconfig,
        format!(
            "[credential]\n\thelper =\n\
             [credential \"{url}\"]\n\thelper = \"dexcred --token-url {token_url} \
             --client-id {client} --client-auth basic-raw --scope 'openid email profile' \
             --client-secret-file {secret}\"\n",
            url = server.url(),
            token_url = idp.client_credentials_url(),
            client = SERVICE_CLIENT,
        ),
    )
    .expect("write gitconfig");
    let mut cmd = Command::new(git_new());
    env.apply(&mut cmd);
    let out = run(cmd
        .current_dir(env.path())
        .env("GIT_CONFIG_GLOBAL", &gitconfig)
        .args(["clone", "-q", &server.repo_url(), "work"]));
    assert!(out.status.success(), "git clone failed: {}", stderr(&out));
    assert!(env.path().join("work/.git").exists());

    let authenticated: Vec<_> = server
        .auth_log()
        .into_iter()
        .filter(|e| e.scheme != AuthScheme::None)
        .collect();
    assert!(!authenticated.is_empty());
    assert!(
        authenticated
            .iter()
            .all(|e| e.scheme == AuthScheme::Bearer && e.accepted),
        "{authenticated:?}"
    );
    assert_eq!(idp.counts().client_credentials, 1);
}

// ---------------------------------------------------------------------------
// OpenID discovery
// ---------------------------------------------------------------------------

#[test]
fn issuer_discovery_is_cached_in_the_entry() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let issuer = format!("{}/auth/realms/{REALM}", idp.url());
    let flags: Vec<String> = vec![
        "--issuer".into(),
        issuer.clone(),
        "--client-id".into(),
        KEYCLOAK_PUBLIC_CLIENT.into(),
        "--username".into(),
        ALICE.into(),
        "--scope".into(),
        "openid".into(),
    ];

    let first = raw_token(&token_with_password(&env, &flags, &[]));
    let counts = idp.counts();
    assert_eq!(counts.discovery, 1);
    assert_eq!(counts.password_grant, 1);
    let entry = env.only_entry();
    let endpoints = read_entry(&entry)["endpoints"].clone();
    assert_eq!(
        endpoints["token"],
        format!("{issuer}/protocol/openid-connect/token")
    );
    assert_eq!(
        endpoints["end_session"],
        format!("{issuer}/protocol/openid-connect/logout")
    );

    // The second call is a pure cache hit: no request at all.
    let second = raw_token(&token_with_password(&env, &flags, &[]));
    assert_eq!(first, second);
    assert_eq!(idp.counts().total, counts.total);

    // A renewal refreshes at the saved token endpoint, without discovery.
    age_tokens(&entry, 2);
    let third = raw_token(&token_with_password(&env, &flags, &[]));
    assert_ne!(third, first);
    let counts = idp.counts();
    assert_eq!(counts.discovery, 1);
    assert_eq!(counts.refresh_grant, 1);
    assert_eq!(counts.password_grant, 1);

    // Logout uses the saved end_session endpoint (Keycloak style).
    let out = ok(&run(env.dexcred(["logout"]).args(&flags)));
    assert!(out.contains("Logged out"), "{out}");
    let counts = idp.counts();
    assert_eq!(counts.discovery, 1);
    assert_eq!(counts.logout, 1);
    assert_eq!(idp.active_sessions(ALICE), 0);
}

#[test]
fn issuer_discovery_client_credentials_renewal_uses_the_saved_endpoints() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags: Vec<String> = vec![
        "--issuer".into(),
        format!("{}/realms/{REALM}", idp.url()),
        "--client-id".into(),
        SERVICE_CLIENT.into(),
        "--client-auth".into(),
        "basic".into(),
    ];

    let first = raw_token(&token_as_service(&env, &flags, &[]));
    assert_eq!(idp.counts().discovery, 1);
    assert!(idp.requests().iter().any(|r| r.used_basic_auth()));

    age_tokens(&env.only_entry(), 2);
    let second = raw_token(&token_as_service(&env, &flags, &[]));
    assert_ne!(first, second);
    let counts = idp.counts();
    assert_eq!(counts.client_credentials, 2);
    assert_eq!(
        counts.discovery, 1,
        "the renewal used the saved token endpoint"
    );

    // Logout revokes the access token at the advertised revocation endpoint.
    let out = run(env
        .dexcred(["logout"])
        .args(&flags)
        .env("DEXCRED_CLIENT_SECRET", SERVICE_CLIENT_SECRET));
    let text = ok(&out);
    assert!(
        text.contains("Logged out: revoked the access token"),
        "{text}"
    );
    assert_eq!(idp.counts().revoke, 1);
    assert!(!idp.is_valid_token(&second));
    assert!(env.cache_entries().is_empty());
}

#[test]
fn issuer_client_credentials_rediscover_when_the_saved_endpoint_is_gone() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let issuer = format!("{}/realms/{REALM}", idp.url());
    let flags: Vec<String> = vec![
        "--issuer".into(),
        issuer.clone(),
        "--client-id".into(),
        SERVICE_CLIENT.into(),
    ];
    raw_token(&token_as_service(&env, &flags, &[]));
    // The server moved its token endpoint since discovery was saved.
    let entry = env.only_entry();
    let moved = format!("{}/moved-away/token", idp.url());
    edit_entry(&entry, |e| e["endpoints"]["token"] = moved.clone().into());
    age_tokens(&entry, 2);

    raw_token(&token_as_service(&env, &flags, &[]));
    let counts = idp.counts();
    assert_eq!(counts.discovery, 2, "asked discovery again: {counts:?}");
    assert_eq!(counts.client_credentials, 2);
    assert_eq!(
        read_entry(&entry)["endpoints"]["token"],
        format!("{issuer}/protocol/openid-connect/token")
    );
}

// ---------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------

#[test]
fn logout_ends_the_keycloak_session_and_deletes_the_entry() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = keycloak_args(&idp);

    let token = raw_token(&token_with_password(&env, &flags, &[]));
    assert_eq!(idp.active_sessions(ALICE), 1);
    let refresh = read_entry(&env.only_entry())["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();

    let out = run(env.dexcred(["logout"]).args(&flags));
    let text = ok(&out);
    assert!(text.contains("Logged out: ended the session"), "{text}");
    assert!(text.contains("Deleted the cached tokens"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    assert_eq!(idp.active_sessions(ALICE), 0);
    assert_eq!(idp.counts().logout, 1);
    let logout = idp
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/protocol/openid-connect/logout"))
        .expect("logout request");
    assert_eq!(logout.form_value("client_id"), Some(KEYCLOAK_PUBLIC_CLIENT));
    assert_eq!(logout.form_value("refresh_token"), Some(refresh.as_str()));
    assert!(env.cache_entries().is_empty());
    // The session's access token is dead at the server too.
    assert!(!idp.is_valid_token(&token));

    // A second logout has nothing to do, and says so.
    let text = ok(&run(env.dexcred(["logout"]).args(&flags)));
    assert!(text.contains("No cached tokens"), "{text}");
    assert_eq!(idp.counts().logout, 1);
}

#[test]
fn logout_with_the_server_down_still_deletes_the_entry() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let flags = keycloak_args(&idp);
    raw_token(&token_with_password(&env, &flags, &[]));
    assert_eq!(env.cache_entries().len(), 1);

    // The identity provider goes away.
    drop(idp);

    let out = run(env.dexcred(["logout", "--timeout", "5"]).args(&flags));
    let text = ok(&out);
    assert!(text.contains("Deleted the cached tokens"), "{text}");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("dexcred: warning: "), "{err}");
    assert!(lines[0].contains("could not end the session"), "{err}");
    assert!(env.cache_entries().is_empty());
}

/// A logout the server has no part in: (case, provider flags, the login,
/// why the server is not asked).
type LocalLogout = (
    &'static str,
    fn(&FakeIdp) -> Vec<String>,
    fn(&Env, &[String], &[&str]) -> Output,
    &'static str,
);

#[test]
fn logout_without_a_server_side_logout_deletes_locally_and_sends_nothing() {
    let cases: [LocalLogout; 2] = [
        (
            "PCD: Dex has no logout",
            |idp| vec!["--pcd".into(), idp.url(), "--username".into(), ALICE.into()],
            token_with_password,
            "Dex has no logout",
        ),
        (
            "a client-credentials entry",
            basic_service,
            token_as_service,
            "client-credentials",
        ),
    ];
    for (name, flags, login, reason) in cases {
        case(name, || {
            let idp = FakeIdp::pcd();
            let env = Env::new();
            let flags = flags(&idp);
            raw_token(&login(&env, &flags, &[]));
            assert_eq!(env.cache_entries().len(), 1);
            let before = idp.counts().total;

            let out = run(env.dexcred(["logout"]).args(&flags));
            let text = ok(&out);
            assert!(text.contains("Not logged out at the server"), "{text}");
            assert!(text.contains(reason), "{text}");
            assert!(text.contains("Deleted the cached tokens"), "{text}");
            assert!(stderr(&out).is_empty(), "{}", stderr(&out));
            assert!(env.cache_entries().is_empty());
            // Nothing was sent to the server.
            assert_eq!(idp.counts().total, before);
        });
    }
}

#[test]
fn keycloak_asks_for_the_one_time_code_at_a_terminal() {
    use std::io::{Read, Write};
    let idp = FakeIdp::pcd();
    idp.add_user(alice_with_otp(&["777888"]));
    let env = Env::new();
    let flags = keycloak_args(&idp);
    // script(1) gives dexcred a terminal; what we write to it is typed there.
    let cmdline = format!("dexcred token {}", flags.join(" "));
    let mut cmd = Command::new("script");
    env.apply(&mut cmd);
    let mut child = cmd
        .args(["-qec", &cmdline, "/dev/null"])
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut screen_out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = screen_out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    // Type the code once the prompt is on the screen, as a person would.
    // (Whether it is echoed is not checked: rpassword prints the prompt a
    // moment before it turns echo off, so a program typing at once races.)
    let mut screen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&screen).contains("One-time code") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => screen.extend(chunk),
            Err(_) => panic!("no prompt: {}", String::from_utf8_lossy(&screen)),
        }
    }
    stdin.write_all(b"777888\n").expect("type the code");
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    screen.extend(rx.try_iter().flatten());
    drop(stdin);
    let screen = String::from_utf8_lossy(&screen).into_owned();
    assert!(status.success(), "{screen}");
    let token = screen
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .expect("token line")
        .to_string();
    assert!(idp.is_valid_token(&token), "{screen}");
    let logins = grants(&idp, "password");
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].form_value("otp"), None);
    assert_eq!(logins[1].form_value("otp"), Some("777888"));
}
