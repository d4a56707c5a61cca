//! The git credential helper end to end: the real gits on this machine
//! (2.47 speaks `authtype` and gets Bearer, 2.39 gets Basic) clone, push and
//! fetch from the testkit's `git http-backend` server through dexcred, with
//! the fake PCD (Keystone → Dex) behind it; plus the helper protocol's edge
//! cases fed to `dexcred git` directly.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use dexcred_testkit::git::{AuthScheme, GitAuth, GitServer};
use dexcred_testkit::idp::FakeIdp;

/// Longest any single git or dexcred run may take before the test calls it
/// hung. Not a speed assertion: a healthy run takes a fraction of this even
/// on a loaded machine.
const HANG_DEADLINE: Duration = Duration::from_secs(120);

/// Token lifetime for tests that expire tokens with the IdP's clock.
const LIFETIME: Duration = Duration::from_secs(600);

/// How the helper is configured in git.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `credential.<url>.helper = dexcred --pcd … --username …` in the global
    /// config file: git runs `git-credential-dexcred … get` from PATH.
    Link,
    /// `-c credential.helper=!dexcred git --pcd … --username …`.
    Bang,
    /// `helper = dexcred git --pcd …`: git runs `git-credential-dexcred git
    /// --pcd … get`, with the subcommand repeated.
    LinkWithSubcommand,
}

/// One user with a fake PCD, a git server guarded by it, and an isolated
/// HOME whose global git config (GIT_CONFIG_GLOBAL) holds an identity, an
/// empty `credential.helper` and, in the link form, the per-URL helper.
struct Fixture {
    env: Env,
    idp: FakeIdp,
    server: GitServer,
    /// Sent as DEXCRED_PASSWORD to git (and so to the helper) when true.
    with_password: std::cell::Cell<bool>,
    form: Form,
}

impl Fixture {
    fn new(form: Form) -> Fixture {
        let env = Env::new();
        let idp = FakeIdp::pcd();
        let server = GitServer::start(idp.clone(), None, GitAuth::default());
        let f = Fixture {
            env,
            idp,
            server,
            with_password: std::cell::Cell::new(true),
            form,
        };
        f.write_global_config();
        f
    }

    fn provider_args(&self) -> Vec<String> {
        vec![
            "--pcd".to_owned(),
            self.idp.url(),
            "--username".to_owned(),
            ALICE.to_owned(),
        ]
    }

    /// The flags of an unscoped helper (`credential.helper=!dexcred git …`,
    /// or `dexcred git` run by hand): the provider plus `--git-host` for the
    /// test server, the one host it answers for.
    fn helper_args(&self) -> Vec<String> {
        let mut args = vec!["--git-host".to_owned(), host_of(&self.server.url())];
        args.extend(self.provider_args());
        args
    }

    fn gitconfig(&self) -> PathBuf {
        self.env.path().join("gitconfig")
    }

    /// The global config: identity, an empty `credential.helper` to drop
    /// anything inherited, and (link form) the per-URL helper.
    fn write_global_config(&self) {
        let mut text = String::from(
            "[user]\n\tname = Test\n\temail = test@example.com\n\
             [init]\n\tdefaultBranch = main\n\
             [credential]\n\thelper =\n",
        );
        let subcommand = match self.form {
            Form::Link => Some(""),
            Form::LinkWithSubcommand => Some("git "),
            Form::Bang => None,
        };
        if let Some(subcommand) = subcommand {
            text.push_str(&format!(
                "[credential \"{}\"]\n\thelper = \"dexcred {subcommand}{}\"\n",
                self.server.url(),
                self.provider_args().join(" ")
            ));
        }
        std::fs::write(self.gitconfig(), text).expect("write git config");
    }

    /// `git <args>` in `cwd` with the isolated environment.
    fn git(&self, bin: &Path, cwd: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin);
        self.env.apply(&mut cmd);
        cmd.current_dir(cwd)
            .env("GIT_CONFIG_GLOBAL", self.gitconfig());
        if self.with_password.get() {
            cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        }
        if self.form == Form::Bang {
            cmd.arg("-c")
                .arg("credential.helper=")
                .arg("-c")
                .arg(format!(
                    "credential.helper=!dexcred git {}",
                    self.helper_args().join(" ")
                ));
        }
        cmd.args(args);
        run_bounded(&mut cmd, HANG_DEADLINE)
    }

    fn git_ok(&self, bin: &Path, cwd: &Path, args: &[&str]) -> String {
        let out = self.git(bin, cwd, args);
        assert!(
            out.status.success(),
            "git {args:?} failed ({:?})\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    fn clone(&self, bin: &Path, dir: &str) -> PathBuf {
        let url = self.server.repo_url();
        self.git_ok(bin, self.env.path(), &["clone", "-q", &url, dir]);
        self.env.path().join(dir)
    }

    /// The one cache entry.
    fn entry(&self) -> PathBuf {
        self.env.only_entry()
    }

    fn cached_token(&self) -> String {
        entry_token(&self.entry(), "id_token").expect("cached id_token")
    }

    fn refresh_token(&self) -> Option<String> {
        read_entry(&self.entry())["refresh_token"]
            .as_str()
            .map(str::to_owned)
    }

    /// Makes the cached token expire for real: the IdP's clock moves past
    /// its lifetime (the server now refuses it) and the entry says so too
    /// (dexcred's clock did not move). The refresh token is untouched.
    fn expire_token(&self) {
        let old = self.cached_token();
        self.idp.advance_clock(LIFETIME + Duration::from_secs(1));
        age_tokens(&self.entry(), -1);
        assert!(!self.idp.is_valid_token(&old), "the old token must be dead");
    }

    /// Authenticated requests since the log was last cleared, with the
    /// unauthenticated probes (no Authorization header) left out.
    fn authenticated(&self) -> Vec<dexcred_testkit::git::AuthEvent> {
        self.server
            .auth_log()
            .into_iter()
            .filter(|e| e.scheme != AuthScheme::None)
            .collect()
    }

    /// Asserts that every authenticated request used `scheme` (Basic with
    /// username oauth2) and was accepted, and that there was at least one.
    fn assert_all_accepted(&self, scheme: AuthScheme, what: &str) {
        let log = self.authenticated();
        assert!(!log.is_empty(), "{what}: no authenticated request");
        for e in &log {
            assert_eq!(e.scheme, scheme, "{what}: {log:?}");
            assert!(e.accepted, "{what}: {log:?}");
            if scheme == AuthScheme::Basic {
                assert_eq!(e.username.as_deref(), Some("oauth2"), "{what}: {log:?}");
            }
        }
    }

    fn head(&self, bin: &Path, work: &Path, rev: &str) -> String {
        let out = self.git(bin, work, &["rev-parse", rev]);
        ok(&out).trim().to_owned()
    }

    /// `dexcred git <args>` (action included) with `input` on stdin.
    fn helper(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.env.dexcred(["git"]);
        cmd.args(args)
            .args(self.helper_args())
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        with_input(&mut cmd, input)
    }
}

/// Runs `cmd` with `input` written to its stdin (from another thread, and
/// ignoring a pipe the program closed early: it need not read everything).
fn with_input(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start dexcred");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for dexcred");
    writer.join().expect("stdin writer");
    out
}

/// Parses a `get` answer, checking that it is well-formed helper output:
/// success, nothing on stderr, only `key=value` lines with known keys, each
/// newline-terminated, no NUL or CR anywhere, no key given twice (except
/// `capability[]`).
fn answer(out: &Output) -> BTreeMap<String, String> {
    let text = ok(out);
    assert!(
        stderr(out).is_empty(),
        "stderr must be empty: {}",
        stderr(out)
    );
    assert!(text.ends_with('\n'), "{text:?}");
    assert!(!text.contains(['\0', '\r']), "{text:?}");
    let known = [
        "capability[]",
        "authtype",
        "credential",
        "ephemeral",
        "password_expiry_utc",
        "username",
        "password",
    ];
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line:?}"));
        assert!(known.contains(&key), "unexpected key {key:?} in {text:?}");
        assert!(!value.is_empty(), "empty value for {key} in {text:?}");
        let previous = map.insert(key.to_owned(), value.to_owned());
        assert!(previous.is_none(), "{key} given twice in {text:?}");
    }
    map
}

/// The answer git ≥ 2.46 gets: Bearer, ephemeral, with an expiry.
fn assert_bearer(map: &BTreeMap<String, String>, token: &str) {
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "authtype",
            "capability[]",
            "credential",
            "ephemeral",
            "password_expiry_utc"
        ],
        "{map:?}"
    );
    assert_eq!(map["capability[]"], "authtype");
    assert_eq!(map["authtype"], "Bearer");
    assert_eq!(map["credential"], token);
    assert_eq!(map["ephemeral"], "1");
    assert_future_expiry(map);
}

/// The answer older git gets: Basic with `username`.
fn assert_basic(map: &BTreeMap<String, String>, username: &str, token: &str) {
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["password", "password_expiry_utc", "username"],
        "{map:?}"
    );
    assert_eq!(map["username"], username);
    assert_eq!(map["password"], token);
    assert_future_expiry(map);
}

fn assert_future_expiry(map: &BTreeMap<String, String>) {
    let expiry: i64 = map["password_expiry_utc"]
        .parse()
        .expect("password_expiry_utc is unix seconds");
    assert!(expiry > now(), "expiry {expiry} is not in the future");
}

/// What git ≥ 2.46 sends for an HTTP remote.
fn new_git_request(host: &str) -> String {
    format!(
        "capability[]=authtype\ncapability[]=state\nprotocol=http\nhost={host}\n\
         wwwauth[]=Basic realm=\"git\"\nwwwauth[]=Bearer realm=\"git\"\n\n"
    )
}

/// What git 2.39 sends.
fn old_git_request(host: &str) -> String {
    format!("protocol=http\nhost={host}\n\n")
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned()
}

// ---------------------------------------------------------------------------
// 1. clone, push and fetch through the helper
// ---------------------------------------------------------------------------

/// Clones twice, pushes a commit from the first clone, fetches it into the
/// second: every authenticated request used `scheme` and was accepted, the
/// server has the pushed commit, and one password login served it all.
fn clone_push_fetch(bin: &Path, form: Form, scheme: AuthScheme) {
    let f = Fixture::new(form);
    let a = f.clone(bin, "a");
    assert!(a.join("README.md").exists());
    f.assert_all_accepted(scheme, "clone");
    let token = f.cached_token();
    assert!(f.idp.is_valid_token(&token));

    std::fs::write(a.join("pushed.txt"), "from dexcred\n").expect("write file");
    f.git_ok(bin, &a, &["add", "pushed.txt"]);
    f.git_ok(bin, &a, &["commit", "-qm", "pushed through dexcred"]);
    f.server.clear_auth_log();
    f.git_ok(bin, &a, &["push", "-q", "origin", "main"]);
    f.assert_all_accepted(scheme, "push");
    let pushed = f.head(bin, &a, "HEAD");
    assert_eq!(f.server.branch_commit("main").as_deref(), Some(&*pushed));

    // A second clone made before the push would not have it: clone from the
    // first commit's state by resetting, then fetch.
    let b = f.clone(bin, "b");
    f.git_ok(bin, &b, &["reset", "-q", "--hard", "HEAD~1"]);
    f.git_ok(bin, &b, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    f.server.clear_auth_log();
    f.git_ok(bin, &b, &["fetch", "-q", "origin"]);
    f.assert_all_accepted(scheme, "fetch");
    assert_eq!(f.head(bin, &b, "refs/remotes/origin/main"), pushed);

    let counts = f.idp.counts();
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(counts.refresh_grant, 0, "{counts:?}");
    assert_eq!(f.cached_token(), token, "the cached token served every run");
}

#[test]
fn git_2_47_bearer_with_link_helper() {
    clone_push_fetch(&git_new(), Form::Link, AuthScheme::Bearer);
}

#[test]
fn git_2_47_bearer_with_bang_helper() {
    clone_push_fetch(&git_new(), Form::Bang, AuthScheme::Bearer);
}

#[test]
fn git_2_47_bearer_with_link_helper_naming_the_subcommand() {
    clone_push_fetch(&git_new(), Form::LinkWithSubcommand, AuthScheme::Bearer);
}

#[test]
fn git_2_39_basic_with_link_helper() {
    clone_push_fetch(&git_old(), Form::Link, AuthScheme::Basic);
}

#[test]
fn git_2_39_basic_with_bang_helper() {
    clone_push_fetch(&git_old(), Form::Bang, AuthScheme::Basic);
}

/// The pipeline set-up of docs/git.md: everything from DEXCRED_* variables,
/// the helper line reduced to `dexcred`, CI=true; Basic forced through the
/// environment even though git 2.47 could do Bearer.
#[test]
fn pipeline_configuration_from_the_environment() {
    let f = Fixture::new(Form::Bang);
    let password_file = f.env.path().join("password");
    std::fs::write(&password_file, format!("{ALICE_PASSWORD}\n")).expect("write password");
    let url = f.server.repo_url();
    let mut cmd = Command::new(git_new());
    f.env.apply(&mut cmd);
    cmd.current_dir(f.env.path())
        .env("GIT_CONFIG_GLOBAL", f.gitconfig())
        .env("CI", "true")
        .env("DEXCRED_PCD", f.idp.url())
        .env("DEXCRED_USERNAME", ALICE)
        .env("DEXCRED_PASSWORD_FILE", &password_file)
        .env("DEXCRED_GIT_AUTH", "basic")
        .env("DEXCRED_GIT_USERNAME", "oauth2")
        .env("DEXCRED_GIT_HOST", host_of(&f.server.url()))
        .args([
            "-c",
            "credential.helper=",
            "-c",
            "credential.helper=dexcred",
        ])
        .args(["clone", "-q", &url, "w"]);
    let out = run_bounded(&mut cmd, HANG_DEADLINE);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(f.env.path().join("w/README.md").exists());
    f.assert_all_accepted(AuthScheme::Basic, "clone");
    assert_eq!(f.idp.counts().password_grant, 1);
}

// ---------------------------------------------------------------------------
// 2. renewal between two fetches
// ---------------------------------------------------------------------------

#[test]
fn expired_token_is_refreshed_between_fetches() {
    for (bin, scheme) in [
        (git_new(), AuthScheme::Bearer),
        (git_old(), AuthScheme::Basic),
    ] {
        let f = Fixture::new(Form::Link);
        f.idp.set_token_lifetime(LIFETIME);
        let work = f.clone(&bin, "w");
        f.git_ok(&bin, &work, &["fetch", "-q", "origin"]);
        let first = f.cached_token();
        let first_refresh = f.refresh_token().expect("refresh token after login");
        f.expire_token();

        f.server.clear_auth_log();
        f.git_ok(&bin, &work, &["fetch", "-q", "origin"]);
        f.assert_all_accepted(scheme, "fetch after expiry");
        let counts = f.idp.counts();
        assert_eq!(counts.password_grant, 1, "{bin:?}: {counts:?}");
        assert_eq!(counts.refresh_grant, 1, "{bin:?}: {counts:?}");
        assert_eq!(counts.refresh_rejected, 0, "{bin:?}: {counts:?}");
        assert_ne!(f.cached_token(), first, "{bin:?}: a new token was saved");
        let rotated = f.refresh_token().expect("refresh token after refresh");
        assert_ne!(
            rotated, first_refresh,
            "{bin:?}: the rotated refresh token was saved"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. a token the server refuses is erased and renewed
// ---------------------------------------------------------------------------

#[test]
fn rejected_token_is_erased_and_renewed_with_the_refresh_token() {
    for (bin, scheme) in [
        (git_new(), AuthScheme::Bearer),
        (git_old(), AuthScheme::Basic),
    ] {
        let f = Fixture::new(Form::Link);
        let work = f.clone(&bin, "w");
        let dead = f.cached_token();
        let refresh = f.refresh_token().expect("refresh token after login");
        f.idp.revoke_token(&dead);

        // The server refuses the (still unexpired) cached token: git fails
        // this command and tells the helper to erase it.
        f.server.clear_auth_log();
        let out = f.git(&bin, &work, &["fetch", "-q", "origin"]);
        assert!(
            !out.status.success(),
            "{bin:?}: fetch with a revoked token must fail"
        );
        let log = f.authenticated();
        assert!(
            log.iter()
                .any(|e| e.scheme == scheme && !e.accepted && e.status == 401),
            "{bin:?}: {log:?}"
        );
        let entry = read_entry(&f.entry());
        assert_eq!(
            entry["rejected"], true,
            "{bin:?}: erase marks the entry: {entry}"
        );
        assert_eq!(entry["id_token"]["value"], dead.as_str());
        assert_eq!(
            entry["refresh_token"].as_str(),
            Some(refresh.as_str()),
            "{bin:?}: erase keeps the refresh token"
        );
        assert_eq!(f.idp.counts().refresh_grant, 0);

        // Without a password, only the refresh token can renew it.
        f.with_password.set(false);
        f.server.clear_auth_log();
        f.git_ok(&bin, &work, &["fetch", "-q", "origin"]);
        f.assert_all_accepted(scheme, "fetch after erase");
        let counts = f.idp.counts();
        assert_eq!(counts.refresh_grant, 1, "{bin:?}: {counts:?}");
        assert_eq!(
            counts.password_grant, 1,
            "{bin:?}: only the first login: {counts:?}"
        );
        let renewed = read_entry(&f.entry());
        assert_ne!(renewed["id_token"]["value"], dead.as_str());
        assert!(
            renewed.get("rejected").is_none_or(|r| r == false),
            "{renewed}"
        );
        assert!(f.refresh_token().is_some_and(|r| r != refresh));
        let refresh_requests: Vec<_> = f
            .idp
            .requests()
            .into_iter()
            .filter(|r| r.form_value("grant_type") == Some("refresh_token"))
            .collect();
        assert_eq!(refresh_requests.len(), 1);
        assert_eq!(
            refresh_requests[0].form_value("refresh_token"),
            Some(refresh.as_str()),
            "{bin:?}: the refresh token kept by erase was used"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. many gits at once on an expired entry
// ---------------------------------------------------------------------------

#[test]
fn heavy_parallel_fetches_on_an_expired_entry_refresh_once() {
    const N: usize = 16;
    let bin = git_new();
    let f = Fixture::new(Form::Link);
    f.idp.set_token_lifetime(LIFETIME);
    // N empty repositories pointing at the server (no network needed).
    let url = f.server.repo_url();
    let dirs: Vec<PathBuf> = (0..N)
        .map(|i| {
            let dir = f.env.path().join(format!("r{i}"));
            std::fs::create_dir_all(&dir).expect("create repo dir");
            f.git_ok(&bin, &dir, &["init", "-q"]);
            f.git_ok(&bin, &dir, &["remote", "add", "origin", &url]);
            dir
        })
        .collect();
    // Log in once, then let the token expire.
    f.git_ok(&bin, &dirs[0], &["ls-remote", "-q", "origin"]);
    assert_eq!(f.idp.counts().password_grant, 1);
    f.expire_token();

    f.with_password.set(false);
    f.server.clear_auth_log();
    let handles: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let mut cmd = Command::new(&bin);
            f.env.apply(&mut cmd);
            cmd.current_dir(dir)
                .env("GIT_CONFIG_GLOBAL", f.gitconfig())
                .args(["fetch", "-q", "origin"]);
            std::thread::spawn(move || run_bounded(&mut cmd, HANG_DEADLINE))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().expect("fetch thread");
        assert!(out.status.success(), "fetch {i} failed: {}", stderr(&out));
    }
    f.assert_all_accepted(AuthScheme::Bearer, "parallel fetches");
    let counts = f.idp.counts();
    assert_eq!(counts.refresh_grant, 1, "{counts:?}");
    assert_eq!(counts.claimed_errors, 0, "{counts:?}");
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    for dir in &dirs {
        let out = f.git(&bin, dir, &["rev-parse", "refs/remotes/origin/main"]);
        assert_eq!(
            ok(&out).trim(),
            f.server.branch_commit("main").expect("server main")
        );
    }
}

// ---------------------------------------------------------------------------
// 5. protocol edge cases, fed to `dexcred git` directly
// ---------------------------------------------------------------------------

/// An environment with a cached token (one password login), for edge cases
/// that need an answer.
fn logged_in() -> (Fixture, String) {
    let f = Fixture::new(Form::Bang);
    let host = host_of(&f.server.url());
    let map = answer(&f.helper(&["get"], old_git_request(&host).as_bytes()));
    let token = f.cached_token();
    assert_basic(&map, "oauth2", &token);
    (f, token)
}

#[test]
fn get_answers_bearer_to_new_git_and_basic_to_old_git() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    assert_bearer(
        &answer(&f.helper(&["get"], new_git_request(&host).as_bytes())),
        &token,
    );
    assert_basic(
        &answer(&f.helper(&["get"], old_git_request(&host).as_bytes())),
        "oauth2",
        &token,
    );
    // --git-username (and its env var) for servers that want another name.
    let mut out = f.helper(
        &["get", "--git-username", "x-token-auth"],
        old_git_request(&host).as_bytes(),
    );
    assert_basic(&answer(&out), "x-token-auth", &token);
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args())
        .env("DEXCRED_GIT_USERNAME", "x-access-token");
    out = with_input(&mut cmd, old_git_request(&host).as_bytes());
    assert_basic(&answer(&out), "x-access-token", &token);
    assert_eq!(f.idp.counts().password_grant, 1);
}

#[test]
fn helper_link_takes_flags_first_and_the_action_last() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    let mut cmd = Command::new(f.env.bin_dir().join("git-credential-dexcred"));
    f.env.apply(&mut cmd);
    cmd.args(f.helper_args())
        .args(["--git-auth", "auto", "get"]);
    assert_bearer(
        &answer(&with_input(&mut cmd, new_git_request(&host).as_bytes())),
        &token,
    );
    let mut cmd = Command::new(f.env.bin_dir().join("git-credential-dexcred"));
    f.env.apply(&mut cmd);
    cmd.arg("capability");
    let out = with_input(&mut cmd, b"");
    assert_eq!(ok(&out), "version 0\ncapability authtype\n");
}

#[test]
fn get_ignores_garbage_lines() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    let mut input = b"no equals sign here\n=value without key\n\x01\x02\x03\n".to_vec();
    input.extend_from_slice(b"\xff\xfe not utf-8\npassword=a\0b\n");
    input.extend_from_slice(new_git_request(&host).as_bytes());
    assert_bearer(&answer(&f.helper(&["get"], &input)), &token);
}

#[test]
fn get_skips_huge_lines() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    // A 100 KiB line that would have enabled Basic-only mode if it were
    // read, then the real request.
    let mut input = format!("capability[]={}\n", "x".repeat(100 * 1024)).into_bytes();
    input.extend_from_slice(format!("wwwauth[]={}\n", "y".repeat(70 * 1024)).as_bytes());
    input.extend_from_slice(new_git_request(&host).as_bytes());
    assert_bearer(&answer(&f.helper(&["get"], &input)), &token);
    // A huge line ending at EOF without a newline.
    let mut input = old_git_request(&host).replace("\n\n", "\n").into_bytes();
    input.extend_from_slice(format!("host={}", "z".repeat(200 * 1024)).as_bytes());
    assert_basic(&answer(&f.helper(&["get"], &input)), "oauth2", &token);
    // More than the whole-input bound: still answered, nothing hangs.
    let input = old_git_request(&host).replace("\n\n", "\n") + &"a=b\n".repeat(400 * 1024);
    assert_basic(
        &answer(&f.helper(&["get"], input.as_bytes())),
        "oauth2",
        &token,
    );
}

#[test]
fn empty_capability_entry_clears_the_list() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    let input = format!(
        "capability[]=authtype\ncapability[]=\n{}",
        old_git_request(&host)
    );
    assert_basic(
        &answer(&f.helper(&["get"], input.as_bytes())),
        "oauth2",
        &token,
    );
    let input = format!(
        "capability[]=\ncapability[]=authtype\n{}",
        old_git_request(&host)
    );
    assert_bearer(&answer(&f.helper(&["get"], input.as_bytes())), &token);
}

#[test]
fn get_without_a_protocol_and_host_answers_nothing() {
    let (f, _token) = logged_in();
    // No host means no way to know where the token would go: silence.
    for input in [&b""[..], b"\n", b"protocol=https\n\n", b"host=x\n\n"] {
        let out = f.helper(&["get"], input);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
    }
}

#[test]
fn git_auth_bearer_refuses_old_git_and_basic_serves_new_git() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    let out = f.helper(
        &["get", "--git-auth", "bearer"],
        old_git_request(&host).as_bytes(),
    );
    let line = fails_with(&out, 2);
    assert!(line.contains("--git-auth bearer needs git 2.46"), "{line}");
    assert!(!line.contains(&token), "{line}");
    // With a new git, bearer is what it says.
    assert_bearer(
        &answer(&f.helper(
            &["get", "--git-auth", "bearer"],
            new_git_request(&host).as_bytes(),
        )),
        &token,
    );
    // Basic for a new git: no capability echoed, username + password.
    assert_basic(
        &answer(&f.helper(
            &["get", "--git-auth", "basic"],
            new_git_request(&host).as_bytes(),
        )),
        "oauth2",
        &token,
    );
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args()).env("DEXCRED_GIT_AUTH", "basic");
    let out = with_input(&mut cmd, new_git_request(&host).as_bytes());
    assert_basic(&answer(&out), "oauth2", &token);
    assert_eq!(f.idp.counts().password_grant, 1);
}

#[test]
fn capability_store_and_unknown_actions() {
    let (f, _token) = logged_in();
    let host = host_of(&f.server.url());
    let before = std::fs::read(f.entry()).expect("read entry");
    let requests = f.idp.counts().total;

    let out = f.helper(&["capability"], b"");
    assert_eq!(ok(&out), "version 0\ncapability authtype\n");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let stored = format!(
        "{}username=oauth2\npassword=whatever\n\n",
        old_git_request(&host).trim_end()
    );
    for (action, input) in [
        ("store", stored.as_str()),
        ("frobnicate", new_git_request(&host).as_str()),
    ] {
        let out = f.helper(&[action], input.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{action}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{action}: {}", stdout(&out));
        assert!(stderr(&out).is_empty(), "{action}: {}", stderr(&out));
    }
    // Unknown actions need no provider flags either.
    let mut cmd = f.env.dexcred(["git", "some-future-action"]);
    let out = with_input(&mut cmd, b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && stderr(&out).is_empty());

    assert_eq!(std::fs::read(f.entry()).expect("read entry"), before);
    assert_eq!(f.idp.counts().total, requests, "no request to the IdP");
}

#[test]
fn cleartext_http_to_a_remote_host_is_refused() {
    let (f, token) = logged_in();
    let requests = f.idp.counts().total;
    let remote = [
        "git.example.com",
        "git.example.com:8080",
        "10.0.0.1",
        "127.0.0.1.nip.io",
    ];
    let local = ["localhost:3000", "[::1]:3000", "127.0.0.1"];
    // Every host is one the helper is for: only the transport decides.
    let hosts: Vec<&str> = remote.iter().chain(&local).copied().collect();
    let helper = |input: &str| {
        let mut cmd = f.env.dexcred(["git", "get"]);
        cmd.args(f.provider_args())
            .env("DEXCRED_GIT_HOST", hosts.join(","))
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        with_input(&mut cmd, input.as_bytes())
    };
    for host in remote {
        for input in [new_git_request(host), old_git_request(host)] {
            // Silent for git (exit 0, nothing on stdout), one warning line.
            let out = helper(&input);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert!(out.stdout.is_empty(), "{}", stdout(&out));
            let err = stderr(&out);
            assert!(err.contains("clear text"), "{err}");
            assert!(err.contains(host.split(':').next().unwrap()), "{err}");
            assert!(!err.contains(&token));
        }
    }
    // https to the same host is fine, and so is http to loopback names.
    let https = "capability[]=authtype\nprotocol=https\nhost=git.example.com\n\n";
    assert_bearer(&answer(&helper(https)), &token);
    for host in local {
        let out = helper(&old_git_request(host));
        assert_basic(&answer(&out), "oauth2", &token);
    }
    assert_eq!(f.idp.counts().total, requests, "cache hits only");
}

#[test]
fn erase_ignores_a_credential_that_is_not_the_cached_token() {
    let (f, token) = logged_in();
    let host = host_of(&f.server.url());
    let before = std::fs::read(f.entry()).expect("read entry");
    for input in [
        format!(
            "{}password=someone-elses-token\n\n",
            old_git_request(&host).trim_end()
        ),
        format!(
            "capability[]=authtype\nprotocol=http\nhost={host}\nauthtype=Bearer\ncredential=other\n\n"
        ),
        format!("{}username=oauth2\n\n", old_git_request(&host).trim_end()),
        String::new(),
    ] {
        let out = f.helper(&["erase"], input.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            out.stdout.is_empty() && stderr(&out).is_empty(),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(f.entry()).expect("read entry"), before);

    // The cached token itself, as git 2.47 presents it: marked, kept.
    let input = format!(
        "capability[]=authtype\nprotocol=http\nhost={host}\nauthtype=Bearer\ncredential={token}\nephemeral=1\n\n"
    );
    let out = f.helper(&["erase"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && stderr(&out).is_empty());
    let entry = read_entry(&f.entry());
    assert_eq!(entry["rejected"], true);
    assert!(entry["refresh_token"].is_string());
    // The next get renews with the refresh token.
    let map = answer(&f.helper(&["get"], new_git_request(&host).as_bytes()));
    let renewed = f.cached_token();
    assert_ne!(renewed, token);
    assert_bearer(&map, &renewed);
    let counts = f.idp.counts();
    assert_eq!(
        (counts.password_grant, counts.refresh_grant),
        (1, 1),
        "{counts:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. non-interactive failure
// ---------------------------------------------------------------------------

#[test]
fn without_a_password_get_fails_with_one_line() {
    let f = Fixture::new(Form::Bang);
    let host = host_of(&f.server.url());
    let input = new_git_request(&host);
    // GIT_TERMINAL_PROMPT=0 (set by Env), CI=true, and no terminal at all.
    let mut variants: Vec<Command> = Vec::new();
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args());
    variants.push(cmd);
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args())
        .env_remove("GIT_TERMINAL_PROMPT")
        .env("CI", "true");
    variants.push(cmd);
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args()).env_remove("GIT_TERMINAL_PROMPT");
    // SAFETY: setsid is async-signal-safe; it detaches the child from any
    // controlling terminal, so /dev/tty cannot be opened.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    variants.push(cmd);
    for mut cmd in variants {
        let out = with_input(&mut cmd, input.as_bytes());
        let line = fails_with(&out, 3);
        assert!(line.contains("login required"), "{line}");
        assert!(line.contains("DEXCRED_PASSWORD"), "{line}");
    }
    assert_eq!(
        f.idp.counts().total,
        0,
        "nothing to ask the IdP without a password"
    );
    assert!(f.env.cache_entries().is_empty());
}

#[test]
fn without_a_password_git_fails_with_dexcreds_line_and_does_not_hang() {
    for bin in [git_new(), git_old()] {
        for form in [Form::Link, Form::Bang] {
            let f = Fixture::new(form);
            f.with_password.set(false);
            let url = f.server.repo_url();
            let out = f.git(&bin, f.env.path(), &["clone", "-q", &url, "w"]);
            assert!(!out.status.success(), "{bin:?} {form:?}");
            let err = stderr(&out);
            let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("dexcred: ")).collect();
            assert_eq!(ours.len(), 1, "{bin:?} {form:?}: {err}");
            assert!(ours[0].contains("login required"), "{err}");
            assert!(err.contains("terminal prompts disabled"), "{bin:?}: {err}");
            assert!(!f.env.path().join("w").join("README.md").exists());
            assert_eq!(f.idp.counts().total, 0);
            assert!(
                f.authenticated().is_empty(),
                "git sent no credentials: {:?}",
                f.server.auth_log()
            );
        }
    }
}

#[test]
fn pcd_without_a_username_is_a_usage_error() {
    let f = Fixture::new(Form::Bang);
    let host = host_of(&f.server.url());
    let mut cmd = f.env.dexcred(["git", "get", "--pcd", &f.idp.url()]);
    cmd.env("DEXCRED_PASSWORD", ALICE_PASSWORD);
    let out = with_input(&mut cmd, new_git_request(&host).as_bytes());
    let line = fails_with(&out, 2);
    assert!(
        line.contains("--username NAME (or DEXCRED_USERNAME)"),
        "{line}"
    );
    assert_eq!(f.idp.counts().total, 0);
}

// ---------------------------------------------------------------------------
// 6b. on a terminal: prompt only when allowed
// ---------------------------------------------------------------------------

/// What a run on a terminal produced: the process output (stdout and stderr
/// are pipes) and everything written to the terminal.
struct TerminalRun {
    out: Output,
    screen: String,
}

/// Runs `cmd` in a new session whose controlling terminal is a fresh pty,
/// with `input` on stdin (a pipe, as git gives helpers). When `typed` is
/// given, it is typed on the terminal once the screen shows "Password for"
/// and the terminal's echo is off (the program is reading a secret).
fn run_on_terminal(cmd: &mut Command, input: &[u8], typed: Option<&str>) -> TerminalRun {
    use std::os::fd::AsRawFd;

    let (master, slave) = crate::common::pty::attach_new_pty(cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start on a terminal");
    drop(slave);
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });

    let mut master = std::fs::File::from(master);
    let mut screen = Vec::new();
    let mut typed = typed.map(|t| format!("{t}\n"));
    let started = Instant::now();
    let status = loop {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = master.read(&mut buf) {
            screen.extend_from_slice(&buf[..n]);
        }
        if let Some(text) = &typed
            && String::from_utf8_lossy(&screen).contains("Password for")
            && !echo_on(master.as_raw_fd())
        {
            master
                .write_all(text.as_bytes())
                .expect("type on the terminal");
            typed = None;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > HANG_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} hung on the terminal; screen: {:?}",
                String::from_utf8_lossy(&screen)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = master.read(&mut buf) {
        screen.extend_from_slice(&buf[..n]);
    }
    writer.join().expect("stdin writer");
    TerminalRun {
        out: Output {
            status,
            stdout: out_reader.join().expect("stdout reader"),
            stderr: err_reader.join().expect("stderr reader"),
        },
        screen: String::from_utf8_lossy(&screen).into_owned(),
    }
}

/// Whether the terminal behind `master` echoes input (Linux reports the
/// slave's settings through the master).
fn echo_on(master: std::os::fd::RawFd) -> bool {
    // SAFETY: tcgetattr fills the struct; zeroed is a valid termios.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::tcgetattr(master, &mut t) };
    rc != 0 || t.c_lflag & libc::ECHO != 0
}

#[test]
fn on_a_terminal_get_prompts_for_the_password_without_echo() {
    let f = Fixture::new(Form::Bang);
    let host = host_of(&f.server.url());
    let mut cmd = f.env.dexcred(["git", "get"]);
    cmd.args(f.helper_args()).env_remove("GIT_TERMINAL_PROMPT");
    let run = run_on_terminal(
        &mut cmd,
        new_git_request(&host).as_bytes(),
        Some(ALICE_PASSWORD),
    );
    assert!(
        run.screen
            .contains(&format!("Password for {ALICE} at {}", f.idp.url())),
        "{:?}",
        run.screen
    );
    assert!(
        !run.screen.contains(ALICE_PASSWORD),
        "echoed: {:?}",
        run.screen
    );
    assert_bearer(&answer(&run.out), &f.cached_token());
    assert_eq!(f.idp.counts().password_grant, 1);
}

#[test]
fn on_a_terminal_git_clone_prompts_through_dexcred() {
    let f = Fixture::new(Form::Link);
    f.with_password.set(false);
    let url = f.server.repo_url();
    let mut cmd = Command::new(git_new());
    f.env.apply(&mut cmd);
    cmd.current_dir(f.env.path())
        .env_remove("GIT_TERMINAL_PROMPT")
        .env("GIT_CONFIG_GLOBAL", f.gitconfig())
        .args(["clone", "-q", &url, "w"]);
    let run = run_on_terminal(&mut cmd, b"", Some(ALICE_PASSWORD));
    assert!(
        run.out.status.success(),
        "{}\nscreen: {:?}",
        stderr(&run.out),
        run.screen
    );
    assert!(run.screen.contains("Password for"), "{:?}", run.screen);
    assert!(
        !run.screen.contains(ALICE_PASSWORD),
        "echoed: {:?}",
        run.screen
    );
    assert!(f.env.path().join("w/README.md").exists());
    f.assert_all_accepted(AuthScheme::Bearer, "clone");
    assert_eq!(f.idp.counts().password_grant, 1);
}

#[test]
fn on_a_terminal_git_terminal_prompt_or_ci_forbid_prompting() {
    let f = Fixture::new(Form::Bang);
    let host = host_of(&f.server.url());
    let unattended: [(&str, &str); 6] = [
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_TERMINAL_PROMPT", "false"),
        ("GIT_TERMINAL_PROMPT", "no"),
        ("GIT_TERMINAL_PROMPT", ""),
        ("CI", "true"),
        ("CI", "1"),
    ];
    for (name, value) in unattended {
        let mut cmd = f.env.dexcred(["git", "get"]);
        cmd.args(f.helper_args())
            .env_remove("GIT_TERMINAL_PROMPT")
            .env(name, value);
        // Were it to prompt, the password typed would let it succeed.
        let run = run_on_terminal(
            &mut cmd,
            new_git_request(&host).as_bytes(),
            Some(ALICE_PASSWORD),
        );
        let line = fails_with(&run.out, 3);
        assert!(line.contains("login required"), "{name}={value}: {line}");
        assert!(run.screen.is_empty(), "{name}={value}: {:?}", run.screen);
    }
    assert_eq!(f.idp.counts().total, 0);
}

// ---------------------------------------------------------------------------
// 7. the expiry git and kubectl are told
// ---------------------------------------------------------------------------

/// The refresh margin as documented: 10% of the lifetime, 10 s to 5 min,
/// never more than half the lifetime.
fn margin(lifetime: i64) -> i64 {
    (lifetime / 10).clamp(10, 300).min(lifetime / 2)
}

#[test]
fn password_expiry_equals_kubectl_expiration_timestamp() {
    for lifetime in [LIFETIME, Duration::from_secs(24 * 3600)] {
        let f = Fixture::new(Form::Bang);
        f.idp.set_token_lifetime(lifetime);
        let host = host_of(&f.server.url());
        let bearer = answer(&f.helper(&["get"], new_git_request(&host).as_bytes()));
        let basic = answer(&f.helper(&["get"], old_git_request(&host).as_bytes()));

        let mut kubectl = f.env.dexcred(["kubectl"]);
        kubectl.args(f.provider_args());
        let cred: serde_json::Value =
            serde_json::from_str(&ok(&run(&mut kubectl))).expect("ExecCredential JSON");
        let stamp = cred["status"]["expirationTimestamp"]
            .as_str()
            .expect("expirationTimestamp");
        let kube_expiry =
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339")
                .unix_timestamp();
        assert_eq!(cred["status"]["token"], f.cached_token().as_str());

        let entry = read_entry(&f.entry());
        let expires_at = entry["id_token"]["expires_at"]
            .as_i64()
            .expect("expires_at");
        let issued_at = entry["id_token"]["issued_at"].as_i64().expect("issued_at");
        let expected = expires_at - margin(expires_at - issued_at);
        assert!(expected < expires_at);
        for map in [&bearer, &basic] {
            assert_eq!(
                map["password_expiry_utc"],
                kube_expiry.to_string(),
                "{lifetime:?}"
            );
            assert_eq!(
                map["password_expiry_utc"],
                expected.to_string(),
                "{lifetime:?}"
            );
        }
        assert_eq!(f.idp.counts().password_grant, 1);
    }
}
