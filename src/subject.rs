//! Subject tokens for token exchange (RFC 8693): the identity token a CI
//! system gives each job (GitLab `id_tokens:`, GitHub Actions' OIDC
//! endpoint, a Kubernetes projected service-account token).
//!
//! A subject token is a secret and short-lived: CI systems rotate it, so it
//! is read again for every exchange and never cached, logged or written
//! anywhere. Only *who* it speaks for (its `iss` and `sub`) goes into the
//! cache key.

use std::path::PathBuf;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::jwt;
use crate::secret::{self, Secret};
use crate::url::validate_url_with_query;

/// The variable that holds a subject token itself (GitLab: name it in
/// `id_tokens:`, or copy the job's variable into it).
pub const ENV_SUBJECT_TOKEN: &str = "DEXCRED_SUBJECT_TOKEN";
/// What GitHub Actions sets in a job with `permissions: id-token: write`.
pub const ENV_GITHUB_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const ENV_GITHUB_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where this run's subject token comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `DEXCRED_SUBJECT_TOKEN`, as this process inherited it.
    Env(Secret),
    /// `--subject-token-file`: read on every exchange (the kubelet and CI
    /// runners rewrite such files).
    File(PathBuf),
    /// `--subject-token-source github-actions`: asked of the runner on
    /// every exchange.
    GithubActions { url: String, request_token: Secret },
}

impl Source {
    /// Exactly one source, checked before anything is sent anywhere:
    /// `DEXCRED_SUBJECT_TOKEN` in `vars`, `file` (`--subject-token-file`) or
    /// GitHub Actions (`--subject-token-source github-actions`).
    pub fn choose(
        vars: &Environment,
        file: Option<PathBuf>,
        github_actions: bool,
    ) -> Result<Source> {
        let env = vars.var(ENV_SUBJECT_TOKEN).filter(|v| !v.trim().is_empty());
        let file = file.filter(|p| !p.as_os_str().is_empty());
        let mut given = Vec::new();
        if env.is_some() {
            given.push(ENV_SUBJECT_TOKEN);
        }
        if file.is_some() {
            given.push("--subject-token-file");
        }
        if github_actions {
            given.push("--subject-token-source");
        }
        if given.len() > 1 {
            return Err(Error::usage(format!(
                "choose one subject token source, not {}",
                given.join(" and ")
            )));
        }
        match (env, file, github_actions) {
            (Some(value), _, _) => Ok(Source::Env(Secret::new(value.trim()))),
            (_, Some(path), _) => Ok(Source::File(std::path::absolute(&path).unwrap_or(path))),
            (_, _, true) => github_actions_source(vars),
            _ => Err(Error::usage(format!(
                "--grant token_exchange needs a subject token: --subject-token-file FILE, \
                 {ENV_SUBJECT_TOKEN}, or --subject-token-source github-actions"
            ))),
        }
    }

    /// For messages: where the token came from, never its value.
    pub fn describe(&self) -> String {
        match self {
            Source::Env(_) => ENV_SUBJECT_TOKEN.to_string(),
            Source::File(path) => format!("the file {}", path.display()),
            Source::GithubActions { .. } => "GitHub Actions".to_string(),
        }
    }

    /// Who the subject token speaks for, for the cache key: `iss` and `sub`
    /// of a JWT, else the source's own name. Reads the variable or file
    /// (cheap; no network): the GitHub request URL names the job instead.
    pub fn identity(&self) -> Result<String> {
        let claims_identity = |token: &Secret| {
            jwt::decode(token.expose())
                .and_then(|c| Some(format!("{} {}", c.iss?, c.sub?)))
                .filter(|id| !id.trim().is_empty())
        };
        Ok(match self {
            Source::Env(token) => {
                claims_identity(token).unwrap_or_else(|| format!("env {ENV_SUBJECT_TOKEN}"))
            }
            Source::File(path) => {
                let token = secret::read_file("subject token", path)?;
                claims_identity(&token).unwrap_or_else(|| format!("file {}", path.display()))
            }
            Source::GithubActions { url, .. } => format!("github-actions {url}"),
        })
    }

    /// The current subject token, read now. `audience` is asked of GitHub
    /// Actions (it becomes the token's `aud`, which Dex's connector checks).
    pub fn read(&self, http: &Http, audience: Option<&str>) -> Result<Secret> {
        let token = match self {
            Source::Env(token) => token.clone(),
            Source::File(path) => secret::read_file("subject token", path)?,
            Source::GithubActions { url, request_token } => {
                fetch_github(http, url, request_token, audience)?
            }
        };
        let text = token.expose();
        if text.len() > 64 * 1024 || !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::local(format!(
                "the subject token from {} is not a token (too long, or spaces or control characters)",
                self.describe()
            )));
        }
        Ok(token)
    }
}

/// Refuses a JWT subject token that has already expired by our clock, so
/// the identity provider is not asked at all and the message says why.
pub fn check_not_expired(token: &Secret, source: &Source, now: i64) -> Result<()> {
    let Some(exp) = jwt::decode(token.expose()).and_then(|c| c.exp) else {
        return Ok(());
    };
    if exp > now {
        return Ok(());
    }
    let when = crate::protocol::kubectl::rfc3339(exp).unwrap_or_else(|_| exp.to_string());
    Err(Error::auth(format!(
        "the subject token from {} expired at {when}; the CI system must provide a fresh one \
         (re-run the job, or check that the file is still being rotated)",
        source.describe()
    )))
}

fn github_actions_source(env: &Environment) -> Result<Source> {
    let var = |name: &str| env.var(name).filter(|v| !v.trim().is_empty());
    let (Some(url), Some(token)) = (var(ENV_GITHUB_URL), var(ENV_GITHUB_TOKEN)) else {
        return Err(Error::usage(format!(
            "--subject-token-source github-actions needs {ENV_GITHUB_URL} and {ENV_GITHUB_TOKEN}, \
             which GitHub Actions sets only in jobs with `permissions: id-token: write`"
        )));
    };
    let url = validate_url_with_query(ENV_GITHUB_URL, &url)?;
    Ok(Source::GithubActions {
        url,
        request_token: Secret::new(token.trim()),
    })
}

/// `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request token as
/// a bearer token; the answer is `{"value":"<jwt>"}`.
fn fetch_github(
    http: &Http,
    url: &str,
    request_token: &Secret,
    audience: Option<&str>,
) -> Result<Secret> {
    let mut url = url.to_string();
    if let Some(aud) = audience {
        let encoded: String = form_urlencoded::byte_serialize(aud.as_bytes()).collect();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("audience=");
        url.push_str(&encoded);
    }
    let bearer = format!("Bearer {}", request_token.expose());
    let response = http
        .get(&url, &[("Authorization", bearer.as_str())])
        .map_err(|e| e.context("fetching the GitHub Actions ID token"))?;
    if matches!(response.status, 401 | 403) {
        return Err(Error::auth(format!(
            "GitHub Actions refused the ID token request ({}); does the job have \
             `permissions: id-token: write`, and is {ENV_GITHUB_TOKEN} this job's?",
            response.reason()
        )));
    }
    if !response.is_success() {
        return Err(response.refusal("fetching the GitHub Actions ID token"));
    }
    serde_json::from_str::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v.get("value")?.as_str().map(str::to_string))
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| {
            Error::provider(format!(
                "{} answered without a token in \"value\"",
                response.what
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_expired_jwt_is_refused_locally() {
        let source = Source::Env(Secret::new("x"));
        let jwt = jwt::encode_for_test(&json!({"exp": 1000, "iss": "i", "sub": "s"}));
        let e = check_not_expired(&Secret::new(jwt.clone()), &source, 1000).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.message().contains("expired at 1970-01-01T00:16:40Z"),
            "{e}"
        );
        assert!(check_not_expired(&Secret::new(jwt), &source, 999).is_ok());
        // Opaque tokens are left to the server.
        assert!(check_not_expired(&Secret::new("opaque"), &source, 5).is_ok());
    }

    #[test]
    fn identity_is_issuer_and_subject_never_the_token() {
        let jwt = jwt::encode_for_test(&json!({"iss": "https://ci", "sub": "project:a", "exp": 9}));
        let id = Source::Env(Secret::new(jwt.clone())).identity().unwrap();
        assert_eq!(id, "https://ci project:a");
        assert!(!id.contains(&jwt));
        let id = Source::Env(Secret::new("opaque")).identity().unwrap();
        assert_eq!(id, "env DEXCRED_SUBJECT_TOKEN");
    }
}
