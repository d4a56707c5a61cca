//! The git smart-HTTP server against the real gits on this machine, with a
//! trivial inline credential helper standing in for dexcred. (Clone, push
//! and fetch with Bearer through git 2.47 and Basic through git 2.39 are
//! tested with dexcred itself in tests/e2e/git.rs.)

use std::path::Path;
use std::process::{Command, Output};

use dexcred_testkit::git::{AuthScheme, GitAuth, GitServer};
use dexcred_testkit::idp::{ALICE, FakeIdp};
use dexcred_testkit::tls::TestCa;
use tempfile::TempDir;

const GIT_NEW: &str = "/usr/local/bin/git"; // 2.47
const GIT_OLD: &str = "/usr/bin/git"; // 2.39

/// A helper that always answers username/password.
fn basic_helper(token: &str) -> String {
    format!(
        "!f() {{ test \"$1\" = get || exit 0; echo username=oauth2; echo password={token}; }}; f"
    )
}

/// Runs a client git isolated from the user's configuration.
fn git(bin: &str, home: &Path, config: &[String], args: &[&str], cwd: &Path) -> Output {
    assert!(Path::new(bin).exists(), "{bin} is missing");
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    for c in config {
        cmd.arg("-c").arg(c);
    }
    cmd.args(args).output().expect("run git")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "git failed: {stderr}");
    stderr
}

struct Fixture {
    _idp: FakeIdp,
    server: GitServer,
    token: String,
    home: TempDir,
    ca_file: Option<std::path::PathBuf>,
}

fn fixture(backend: &str, tls: bool) -> Fixture {
    let idp = FakeIdp::pcd();
    let home = tempfile::tempdir().expect("temp HOME");
    let (config, ca_file) = if tls {
        let ca = TestCa::new();
        let path = home.path().join("ca.pem");
        ca.write_pem(&path).expect("write CA");
        (Some(ca.server_config(&["127.0.0.1"])), Some(path))
    } else {
        (None, None)
    };
    let server =
        GitServer::start_with_git(idp.clone(), config, GitAuth::default(), Path::new(backend));
    let token = idp.mint_id_token(ALICE).expect("alice exists");
    Fixture {
        _idp: idp,
        server,
        token,
        home,
        ca_file,
    }
}

impl Fixture {
    fn config(&self, helper: &str) -> Vec<String> {
        let mut config = vec![
            "credential.helper=".to_owned(),
            format!("credential.helper={helper}"),
            "user.name=Test".to_owned(),
            "user.email=test@example.com".to_owned(),
        ];
        if let Some(ca) = &self.ca_file {
            config.push(format!("http.sslCAInfo={}", ca.display()));
        }
        config
    }

    fn clone_into(&self, bin: &str, helper: &str, dir: &str) -> std::path::PathBuf {
        let url = self.server.repo_url();
        let out = git(
            bin,
            self.home.path(),
            &self.config(helper),
            &["clone", &url, dir],
            self.home.path(),
        );
        ok(&out);
        self.home.path().join(dir)
    }

    fn schemes(&self) -> Vec<AuthScheme> {
        self.server.auth_log().iter().map(|e| e.scheme).collect()
    }
}

#[test]
fn basic_over_https_with_2_47() {
    let f = fixture(GIT_NEW, true);
    assert!(f.server.repo_url().starts_with("https://"));
    let work = f.clone_into(GIT_NEW, &basic_helper(&f.token), "work");
    assert!(work.join("README.md").exists());
    assert!(f.schemes().contains(&AuthScheme::Basic));
}

#[test]
fn invalid_token_fails_the_clone() {
    let f = fixture(GIT_NEW, false);
    let url = f.server.repo_url();
    let cfg = f.config(&basic_helper("not-a-token"));
    let out = git(
        GIT_NEW,
        f.home.path(),
        &cfg,
        &["clone", &url, "w"],
        f.home.path(),
    );
    assert!(!out.status.success());
    let log = f.server.auth_log();
    assert!(log.iter().all(|e| !e.accepted));
    assert!(
        log.iter()
            .any(|e| e.scheme == AuthScheme::Basic && e.status == 401)
    );
}

/// A helper that saves what git sends it (for the `get` action) to `file`,
/// then answers Bearer if it may.
fn recording_helper(token: &str, file: &Path) -> String {
    format!(
        "!f() {{ test \"$1\" = get || exit 0; cat > '{}'; \
         if grep -q 'capability\\[\\]=authtype' '{}'; then \
         echo 'capability[]=authtype'; echo authtype=Bearer; echo credential={token}; \
         else echo username=oauth2; echo password={token}; fi; }}; f",
        file.display(),
        file.display()
    )
}

/// Observed on this machine: git 2.47 passes every challenge to the helper
/// as `wwwauth[]` and sends `Authorization: Bearer` whenever the helper
/// answers `authtype=Bearer`, even if the server only challenged Basic.
/// git 2.39 passes no capabilities or `wwwauth[]`, and (curl with
/// CURLAUTH_ANY) makes a second unauthenticated request before sending Basic.
#[test]
fn what_each_git_tells_the_helper_and_which_scheme_it_uses() {
    let cases = [
        (GIT_NEW, true, AuthScheme::Bearer, 1),
        (GIT_NEW, false, AuthScheme::Bearer, 1),
        (GIT_OLD, true, AuthScheme::Basic, 2),
    ];
    for (bin, bearer_challenge, expected, unauthenticated) in cases {
        let idp = FakeIdp::pcd();
        let auth = GitAuth {
            bearer_challenge,
            ..GitAuth::default()
        };
        let server = GitServer::start_with_git(idp.clone(), None, auth, Path::new(GIT_NEW));
        let token = idp.mint_id_token(ALICE).expect("alice exists");
        let home = tempfile::tempdir().expect("temp HOME");
        let input = home.path().join("helper-input");
        let config = vec![
            "credential.helper=".to_owned(),
            format!("credential.helper={}", recording_helper(&token, &input)),
        ];
        let url = server.repo_url();
        ok(&git(
            bin,
            home.path(),
            &config,
            &["clone", &url, "w"],
            home.path(),
        ));
        let seen = std::fs::read_to_string(&input).unwrap_or_default();
        let new_git = bin == GIT_NEW;
        assert_eq!(seen.contains("capability[]=authtype"), new_git, "{seen}");
        assert_eq!(
            seen.contains("wwwauth[]=Basic realm=\"git\""),
            new_git,
            "{seen}"
        );
        assert_eq!(
            seen.contains("wwwauth[]=Bearer realm=\"git\""),
            new_git && bearer_challenge,
            "{seen}"
        );
        let schemes: Vec<AuthScheme> = server.auth_log().iter().map(|e| e.scheme).collect();
        let none = schemes
            .iter()
            .take_while(|s| **s == AuthScheme::None)
            .count();
        assert_eq!(none, unauthenticated, "{bin}: {schemes:?}");
        assert!(
            schemes[none..].iter().all(|s| *s == expected),
            "{bin}: {schemes:?}"
        );
    }
}

/// A push bigger than git's 1 MiB `http.postBuffer` is sent with
/// `Transfer-Encoding: chunked`, by both gits.
#[test]
fn large_push_uses_chunked_bodies() {
    for bin in [GIT_NEW, GIT_OLD] {
        let f = fixture(GIT_NEW, false);
        let helper = basic_helper(&f.token);
        let work = f.clone_into(bin, &helper, "work");
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..3 * 1024 * 1024)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 33) as u8
            })
            .collect();
        std::fs::write(work.join("noise.bin"), noise).expect("write noise");
        let cfg = f.config(&helper);
        ok(&git(bin, f.home.path(), &cfg, &["add", "noise.bin"], &work));
        ok(&git(
            bin,
            f.home.path(),
            &cfg,
            &["commit", "-qm", "noise"],
            &work,
        ));
        ok(&git(
            bin,
            f.home.path(),
            &cfg,
            &["push", "origin", "main"],
            &work,
        ));
        let head = git(bin, f.home.path(), &cfg, &["rev-parse", "HEAD"], &work);
        let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        assert_eq!(f.server.branch_commit("main"), Some(head), "{bin}");
        let chunked_push = f
            .server
            .auth_log()
            .iter()
            .any(|e| e.path.ends_with("git-receive-pack") && e.chunked && e.accepted);
        assert!(chunked_push, "{bin}: {:?}", f.server.auth_log());
    }
}
