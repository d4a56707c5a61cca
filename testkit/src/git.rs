//! A git smart-HTTP server: `git http-backend` run as CGI behind the testkit
//! HTTP server, guarded by tokens from a [`FakeIdp`].
//!
//! Credentials accepted: `Authorization: Bearer <token>` (git ≥ 2.46 with a
//! helper answering `authtype=Bearer`) or Basic with the configured username
//! and the token as password (GitLab style, any git). Every request is
//! logged with the scheme it used, so tests can tell which one git chose.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use tempfile::TempDir;

use crate::http::{Handler, Reply, Request, Server};
use crate::idp::FakeIdp;
use crate::util::lock;

/// The git used by default to run `http-backend` (2.47 on these machines;
/// `/usr/bin/git` is 2.39 and works too).
pub const DEFAULT_GIT: &str = "/usr/local/bin/git";

/// Name of the served repository: `{url}/repo.git`.
const REPO: &str = "repo.git";

/// What the server demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitAuth {
    /// Username required with Basic (`oauth2` like GitLab; empty: any).
    pub basic_username: String,
    /// Also send a `WWW-Authenticate: Bearer` challenge after the Basic one.
    pub bearer_challenge: bool,
}

impl Default for GitAuth {
    fn default() -> Self {
        GitAuth {
            basic_username: "oauth2".to_owned(),
            bearer_challenge: true,
        }
    }
}

/// The authorization scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// No `Authorization` header.
    None,
    /// `Authorization: Basic …`.
    Basic,
    /// `Authorization: Bearer …`.
    Bearer,
    /// Any other scheme.
    Other,
}

/// One request's authentication outcome.
#[derive(Debug, Clone)]
pub struct AuthEvent {
    /// Method.
    pub method: String,
    /// Path (e.g. `/repo.git/info/refs`).
    pub path: String,
    /// Query (e.g. `service=git-upload-pack`).
    pub query: String,
    /// Scheme used.
    pub scheme: AuthScheme,
    /// Basic username, if Basic was used.
    pub username: Option<String>,
    /// Whether the credentials were accepted.
    pub accepted: bool,
    /// Status answered.
    pub status: u16,
    /// Whether the request body came with `Transfer-Encoding: chunked`
    /// (git uses it for bodies over `http.postBuffer`, 1 MiB).
    pub chunked: bool,
}

/// Everything the request handler needs.
struct Ctx {
    idp: FakeIdp,
    auth: GitAuth,
    git: PathBuf,
    root: PathBuf,
    log: Mutex<Vec<AuthEvent>>,
}

/// A running git server with one bare repository (`main` has one commit).
pub struct GitServer {
    server: Server,
    ctx: Arc<Ctx>,
    _dir: TempDir,
}

impl std::fmt::Debug for GitServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl GitServer {
    /// Starts a server whose `http-backend` is [`DEFAULT_GIT`].
    pub fn start(idp: FakeIdp, tls: Option<Arc<ServerConfig>>, auth: GitAuth) -> GitServer {
        GitServer::start_with_git(idp, tls, auth, Path::new(DEFAULT_GIT))
    }

    /// Starts a server using `git` for the repository and `http-backend`.
    ///
    /// # Panics
    /// If the temporary repository cannot be created (git missing or
    /// broken): the test cannot run without it.
    pub fn start_with_git(
        idp: FakeIdp,
        tls: Option<Arc<ServerConfig>>,
        auth: GitAuth,
        git: &Path,
    ) -> GitServer {
        let dir = tempfile::Builder::new()
            .prefix("testkit-git")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().join("root");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&root).expect("create project root");
        std::fs::create_dir_all(&home).expect("create HOME");
        init_repo(git, &root.join(REPO), &home);
        let ctx = Arc::new(Ctx {
            idp,
            auth,
            git: git.to_owned(),
            root,
            log: Mutex::new(Vec::new()),
        });
        let handler: Handler = {
            let ctx = Arc::clone(&ctx);
            Arc::new(move |req: &Request| handle(&ctx, req))
        };
        let server = Server::start(handler, tls);
        GitServer {
            server,
            ctx,
            _dir: dir,
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `{url}/repo.git`.
    pub fn repo_url(&self) -> String {
        format!("{}/{REPO}", self.url())
    }

    /// Path of the bare repository.
    pub fn bare_path(&self) -> PathBuf {
        self.ctx.root.join(REPO)
    }

    /// The commit `refs/heads/{branch}` points at, if it exists.
    pub fn branch_commit(&self, branch: &str) -> Option<String> {
        let out = git_command(&self.ctx.git, &self.ctx.root)
            .arg("--git-dir")
            .arg(self.bare_path())
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/heads/{branch}"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    /// Authentication outcome of every request so far.
    pub fn auth_log(&self) -> Vec<AuthEvent> {
        lock(&self.ctx.log).clone()
    }

    /// Forgets the authentication log.
    pub fn clear_auth_log(&self) {
        lock(&self.ctx.log).clear();
    }
}

/// A git command isolated from the user's and system configuration.
fn git_command(git: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(git);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C");
    cmd
}

/// Creates the bare repository with one commit on `main` via fast-import
/// (no work tree needed) and enables pushes over HTTP.
fn init_repo(git: &Path, bare: &Path, home: &Path) {
    let run = |args: &[&str], input: Option<&str>| {
        let mut cmd = git_command(git, home);
        cmd.arg("--git-dir").arg(bare).args(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("run git");
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).expect("feed git");
        }
        let status = child.wait().expect("wait for git");
        assert!(status.success(), "git {args:?} failed");
    };
    let mut init = git_command(git, home);
    let status = init
        .args(["init", "--quiet", "--bare", "--initial-branch=main"])
        .arg(bare)
        .status()
        .expect("run git init");
    assert!(status.success(), "git init failed");
    run(&["config", "http.receivepack", "true"], None);
    let readme = "testkit repository\n";
    let message = "initial commit\n";
    let script = format!(
        "commit refs/heads/main\n\
         author Testkit <testkit@example.com> 1700000000 +0000\n\
         committer Testkit <testkit@example.com> 1700000000 +0000\n\
         data {}\n{message}\
         M 644 inline README.md\n\
         data {}\n{readme}\n",
        message.len(),
        readme.len()
    );
    run(&["fast-import", "--quiet"], Some(&script));
}

fn handle(ctx: &Ctx, req: &Request) -> Reply {
    let (scheme, username, accepted) = check_auth(ctx, req);
    let reply = if !req.path.starts_with(&format!("/{REPO}/")) {
        Reply::text(404, "text/plain", "not found\n")
    } else if accepted {
        run_backend(ctx, req, username.as_deref().unwrap_or("token"))
    } else {
        challenge(&ctx.auth)
    };
    lock(&ctx.log).push(AuthEvent {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        scheme,
        username,
        accepted,
        status: reply.status().unwrap_or(0),
        chunked: req
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked")),
    });
    reply
}

/// Classifies the Authorization header and validates its token.
fn check_auth(ctx: &Ctx, req: &Request) -> (AuthScheme, Option<String>, bool) {
    let Some(value) = req.header("authorization") else {
        return (AuthScheme::None, None, false);
    };
    if let Some(token) = req.bearer() {
        return (AuthScheme::Bearer, None, ctx.idp.is_valid_token(token));
    }
    let scheme = value.split(' ').next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("basic") {
        return (AuthScheme::Other, None, false);
    }
    // git sends Basic credentials without URL-encoding them.
    let Some((user, password)) = req.basic_auth_raw() else {
        return (AuthScheme::Basic, None, false);
    };
    let wanted = &ctx.auth.basic_username;
    let user_ok = wanted.is_empty() || *wanted == user;
    let ok = user_ok && ctx.idp.is_valid_token(&password);
    (AuthScheme::Basic, Some(user), ok)
}

/// 401 with a Basic challenge (and a Bearer one when configured).
fn challenge(auth: &GitAuth) -> Reply {
    let mut reply = Reply::text(401, "text/plain", "authentication required\n")
        .with_header("WWW-Authenticate", "Basic realm=\"git\"");
    if auth.bearer_challenge {
        reply = reply.with_header("WWW-Authenticate", "Bearer realm=\"git\"");
    }
    reply
}

/// Runs `git http-backend` as a CGI program for `req`.
fn run_backend(ctx: &Ctx, req: &Request, user: &str) -> Reply {
    let mut cmd = git_command(&ctx.git, &ctx.root);
    cmd.arg("http-backend")
        .envs(cgi_env(ctx, req, user))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        return Reply::text(500, "text/plain", "cannot start git http-backend\n");
    };
    // Feed stdin from another thread so a backend that writes before it has
    // read everything cannot deadlock against us.
    let feeder = child.stdin.take().map(|mut stdin| {
        let body = req.body.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        })
    });
    let mut stderr = child.stderr.take();
    let drain = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(err) = stderr.as_mut() {
            let _ = err.read_to_string(&mut text);
        }
        text
    });
    let mut output = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut output);
    }
    let _ = child.wait();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let _ = drain.join();
    parse_cgi_output(&output)
}

/// The CGI/1.1 environment, plus git's variables and every request header
/// as `HTTP_*` (http-backend reads `HTTP_GIT_PROTOCOL` and
/// `HTTP_CONTENT_ENCODING` from there).
fn cgi_env(ctx: &Ctx, req: &Request, user: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("REQUEST_METHOD".into(), req.method.clone()),
        ("PATH_INFO".into(), req.path.clone()),
        ("QUERY_STRING".into(), req.query.clone()),
        ("CONTENT_LENGTH".into(), req.body.len().to_string()),
        ("REMOTE_USER".into(), user.to_owned()),
        ("REMOTE_ADDR".into(), req.peer.ip().to_string()),
        ("GIT_PROJECT_ROOT".into(), ctx.root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL".into(), "1".into()),
    ];
    if let Some(ct) = req.header("content-type") {
        env.push(("CONTENT_TYPE".into(), ct.to_owned()));
    }
    for (name, value) in &req.headers {
        let skip = [
            "authorization",
            "content-type",
            "content-length",
            "transfer-encoding",
        ];
        let valid = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid && !skip.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            env.push((key, value.clone()));
        }
    }
    env
}

/// Splits CGI output into headers and body; `Status:` sets the code.
fn parse_cgi_output(output: &[u8]) -> Reply {
    let (head, body) = split_head(output);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split(' ')
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(500);
        } else {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    let mut reply = Reply::new(status).with_body(body.to_vec());
    for (name, value) in headers {
        reply = reply.with_header(&name, &value);
    }
    reply
}

/// Finds the blank line ending the CGI headers (CRLF or LF style).
fn split_head(output: &[u8]) -> (&[u8], &[u8]) {
    let crlf = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    match end {
        Some((i, n)) => (&output[..i], &output[i + n..]),
        None => (output, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_with_status_and_headers() {
        let out = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing";
        let reply = parse_cgi_output(out);
        let plain = reply
            .plain()
            .cloned()
            .unwrap_or_else(|| crate::http::Response {
                status: 0,
                headers: vec![],
                body: vec![],
            });
        assert_eq!(plain.status, 404);
        assert_eq!(plain.header("content-type"), Some("text/plain"));
        assert_eq!(plain.body, b"missing");
    }

    #[test]
    fn cgi_output_lf_only_and_default_status() {
        let reply = parse_cgi_output(b"Expires: never\n\n\x00\x01");
        assert_eq!(reply.status(), Some(200));
        assert_eq!(reply.plain().map(|p| p.body.clone()), Some(vec![0, 1]));
        assert_eq!(parse_cgi_output(b"garbage").status(), Some(200));
    }
}
