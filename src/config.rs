//! From command-line flags to what the rest of the program works with: the
//! cache [`Key`], which token to hand out, and (only when a renewal needs
//! it) the provider.
//!
//! Building a [`Config`] is cheap and touches no file, because the cache-hit
//! path builds one on every kubectl call. Secrets in files are read later,
//! by [`Config::provider`] and the password sources, and only on renewal.

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{Key, Store, TokenField};
use crate::cli::{ClientAuthArg, CommonArgs, GrantArg, ProviderArgs, TokenFieldArg};
use crate::error::{Error, Result};
use crate::http::TlsOptions;
use crate::log::Log;
use crate::provider::oauth::{AuthMethod, Endpoint, GrantKind, OAuth};
use crate::provider::pcd::{self, Pcd};
use crate::provider::{Credentials, Provider};
use crate::secret::{self, Secret, Sources};

/// Environment variables that carry secret values themselves. They are read
/// directly, not through clap, so there is no `--password VALUE` flag.
pub const ENV_PASSWORD: &str = "DEXCRED_PASSWORD";
pub const ENV_OTP: &str = "DEXCRED_OTP";
pub const ENV_CLIENT_SECRET: &str = "DEXCRED_CLIENT_SECRET";

/// Form fields dexcred sets itself; `--extra-param` may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "username",
    "password",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "otp",
];

#[derive(Debug, Clone)]
enum Kind {
    Pcd,
    OAuth(Endpoint),
}

impl Kind {
    /// The name stored in the cache key, from which [`Config::for_key`]
    /// can rebuild the kind.
    fn name(&self) -> &'static str {
        match self {
            Kind::Pcd => "pcd",
            Kind::OAuth(Endpoint::Issuer(_)) => "issuer",
            Kind::OAuth(Endpoint::TokenUrl(_)) => "token_url",
        }
    }

    fn from_key(key: &Key) -> Option<Kind> {
        match key.provider.as_str() {
            "pcd" => Some(Kind::Pcd),
            "issuer" => Some(Kind::OAuth(Endpoint::Issuer(key.url.clone()))),
            "token_url" => Some(Kind::OAuth(Endpoint::TokenUrl(key.url.clone()))),
            _ => None,
        }
    }
}

/// A validated invocation.
#[derive(Debug, Clone)]
pub struct Config {
    pub key: Key,
    pub field: TokenField,
    pub store: Store,
    pub log: Log,
    pub force_refresh: bool,
    pub lock_timeout: Duration,
    pub timeout: Duration,
    pub tls: TlsOptions,
    /// "alice@example.com at https://pcd-r1.example.com", for prompts and
    /// messages.
    pub account: String,
    kind: Kind,
    logout_url: Option<String>,
    auth_method: AuthMethod,
    client_secret_file: Option<PathBuf>,
    password: Sources,
    otp: Sources,
}

fn env_secret(name: &'static str) -> Option<(&'static str, Secret)> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| (name, Secret::new(v)))
}

impl Config {
    pub fn from_args(p: &ProviderArgs, common: &CommonArgs) -> Result<Config> {
        let kind = provider_kind(p)?;
        let is_pcd = matches!(kind, Kind::Pcd);
        let url = match &kind {
            Kind::Pcd => validate_url("--pcd", p.pcd.as_deref().unwrap_or_default())?,
            Kind::OAuth(Endpoint::Issuer(u) | Endpoint::TokenUrl(u)) => u.clone(),
        };
        let grant = match (p.grant, &p.username) {
            (Some(GrantArg::ClientCredentials), _) if is_pcd => {
                return Err(Error::usage(
                    "--pcd logs in with a password; --grant client_credentials needs --token-url or --issuer",
                ));
            }
            (Some(GrantArg::Password), _) | (None, Some(_)) => GrantKind::Password,
            // PCD logs in with a password only: without --username that is
            // a usage error below, not a client-credentials login.
            (None, None) if is_pcd => GrantKind::Password,
            (Some(GrantArg::ClientCredentials), _) | (None, None) => GrantKind::ClientCredentials,
        };
        let username = non_empty(&p.username);
        if grant == GrantKind::Password && username.is_none() {
            return Err(Error::usage(
                "--username NAME (or DEXCRED_USERNAME) is required to log in with a password",
            ));
        }
        let client_id = match (non_empty(&p.client_id), is_pcd) {
            (Some(id), _) => id,
            (None, true) => "kubernetes".to_string(),
            (None, false) => {
                return Err(Error::usage(
                    "--client-id ID (or DEXCRED_CLIENT_ID) is required with --issuer or --token-url",
                ));
            }
        };
        let mut extra_params = parse_extra_params(&p.extra_params)?;
        let connector_id = non_empty(&p.connector_id);
        let connector_id = match (is_pcd, connector_id) {
            (true, c) => Some(c.unwrap_or_else(|| "default".to_string())),
            (false, Some(c)) => {
                extra_params.push(("connector_id".to_string(), c));
                extra_params.sort();
                None
            }
            (false, None) => None,
        };
        let scope = non_empty(&p.scope)
            .or_else(|| is_pcd.then(|| pcd::DEFAULT_SCOPE.to_string()))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        let field = match (p.token_field, is_pcd) {
            (Some(TokenFieldArg::IdToken), _) | (None, true) => TokenField::IdToken,
            (Some(TokenFieldArg::AccessToken), _) | (None, false) => TokenField::AccessToken,
        };
        let key = Key {
            provider: kind.name().to_string(),
            url: url.clone(),
            grant: grant.name().to_string(),
            username: username.clone(),
            user_domain: is_pcd.then(|| p.user_domain.clone()),
            project: if is_pcd { non_empty(&p.project) } else { None },
            client_id,
            connector_id,
            scope,
            extra_params,
        };
        Config::assemble(kind, key, field, p, common)
    }

    /// The configuration for an existing cache entry (for `logout --all`):
    /// the identity comes from the entry, connection settings and secrets
    /// from the flags.
    pub fn for_key(key: Key, p: &ProviderArgs, common: &CommonArgs) -> Result<Config> {
        let kind = Kind::from_key(&key).ok_or_else(|| {
            Error::local(format!(
                "unknown provider {:?} in a cache entry",
                key.provider
            ))
        })?;
        let field = match kind {
            Kind::Pcd => TokenField::IdToken,
            Kind::OAuth(_) => TokenField::AccessToken,
        };
        Config::assemble(kind, key, field, p, common)
    }

    fn assemble(
        kind: Kind,
        key: Key,
        field: TokenField,
        p: &ProviderArgs,
        common: &CommonArgs,
    ) -> Result<Config> {
        let logout_url = match non_empty(&p.logout_url) {
            Some(u) => Some(validate_url("--logout-url", &u)?),
            None => None,
        };
        let account = match &key.username {
            Some(u) => format!("{u} at {}", key.url),
            None => format!("client {} at {}", key.client_id, key.url),
        };
        Ok(Config {
            key,
            field,
            store: Store::at(common.cache_dir.as_deref())?,
            log: Log::new(common.verbose),
            force_refresh: p.force_refresh,
            lock_timeout: Duration::from_secs(p.lock_timeout),
            timeout: Duration::from_secs(p.timeout),
            tls: TlsOptions {
                certificate_authority: p.certificate_authority.clone(),
                insecure_skip_verify: p.insecure_skip_tls_verify,
            },
            account,
            kind,
            logout_url,
            auth_method: match p.client_auth {
                ClientAuthArg::Post => AuthMethod::Post,
                ClientAuthArg::Basic => AuthMethod::Basic,
            },
            client_secret_file: p.client_secret_file.clone(),
            // The secrets in the environment are read by `credentials`, so
            // a cache hit never touches them.
            password: Sources {
                what: "password",
                env: None,
                file: p.password_file.clone(),
                command: non_empty(&p.password_command),
            },
            otp: Sources {
                what: "one-time code",
                env: None,
                file: None,
                command: non_empty(&p.otp_command),
            },
        })
    }

    /// Builds the provider, reading the client secret if one is configured.
    /// Called only when tokens must be obtained.
    pub fn provider(&self) -> Result<Box<dyn Provider>> {
        let client_secret = self.client_secret()?;
        let key = &self.key;
        Ok(match &self.kind {
            Kind::Pcd => Box::new(Pcd {
                base: key.url.clone(),
                username: key.username.clone().unwrap_or_default(),
                user_domain: key.user_domain.clone().unwrap_or_default(),
                project: key.project.clone(),
                client_id: key.client_id.clone(),
                connector_id: key.connector_id.clone().unwrap_or_default(),
                scope: key.scope.clone().unwrap_or_default(),
                extra_params: key.extra_params.clone(),
                static_secret: client_secret,
            }),
            Kind::OAuth(endpoint) => Box::new(OAuth {
                endpoint: endpoint.clone(),
                logout_url: self.logout_url.clone(),
                grant: if key.grant == GrantKind::Password.name() {
                    GrantKind::Password
                } else {
                    GrantKind::ClientCredentials
                },
                username: key.username.clone(),
                client_id: key.client_id.clone(),
                client_secret,
                auth_method: self.auth_method,
                scope: key.scope.clone(),
                extra_params: key.extra_params.clone(),
            }),
        })
    }

    fn client_secret(&self) -> Result<Option<Secret>> {
        if let Some((_, value)) = env_secret(ENV_CLIENT_SECRET) {
            return Ok(Some(value));
        }
        match &self.client_secret_file {
            Some(path) => secret::read_file("client secret", path).map(Some),
            None => Ok(None),
        }
    }

    /// The flag that names this identity provider (`--pcd`, `--issuer`,
    /// `--token-url`).
    pub fn provider_flag(&self) -> &'static str {
        match self.kind {
            Kind::Pcd => "--pcd",
            Kind::OAuth(Endpoint::Issuer(_)) => "--issuer",
            Kind::OAuth(Endpoint::TokenUrl(_)) => "--token-url",
        }
    }

    /// The credential sources for this run. `interactive` is the front end's
    /// rule (kubectl's `spec.interactive`, git's terminal rules, …); it is
    /// evaluated only if a secret must be asked for.
    pub fn credentials(&self, interactive: fn() -> bool) -> Credentials {
        Credentials::new(
            Sources {
                env: env_secret(ENV_PASSWORD),
                ..self.password.clone()
            },
            Sources {
                env: env_secret(ENV_OTP),
                ..self.otp.clone()
            },
            interactive,
            self.timeout,
            self.account.clone(),
        )
    }
}

/// A flag's value when it was given and is not blank.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn non_empty(value: &Option<String>) -> Option<String> {
    given(value).map(str::to_string)
}

fn provider_kind(p: &ProviderArgs) -> Result<Kind> {
    let given: Vec<&str> = [
        ("--pcd", &p.pcd),
        ("--issuer", &p.issuer),
        ("--token-url", &p.token_url),
    ]
    .iter()
    .filter(|(_, v)| non_empty(v).is_some())
    .map(|(name, _)| *name)
    .collect();
    match given.as_slice() {
        ["--pcd"] => Ok(Kind::Pcd),
        ["--issuer"] => Ok(Kind::OAuth(Endpoint::Issuer(validate_url(
            "--issuer",
            p.issuer.as_deref().unwrap_or_default(),
        )?))),
        ["--token-url"] => Ok(Kind::OAuth(Endpoint::TokenUrl(validate_url(
            "--token-url",
            p.token_url.as_deref().unwrap_or_default(),
        )?))),
        [] => Err(Error::usage(
            "no identity provider: pass --pcd URL (or --issuer URL / --token-url URL), or set DEXCRED_PCD",
        )),
        many => Err(Error::usage(format!(
            "choose one identity provider, not {} (check DEXCRED_PCD, DEXCRED_ISSUER and DEXCRED_TOKEN_URL too)",
            many.join(" and ")
        ))),
    }
}

/// Accepts `https://` URLs, and `http://` only for loopback hosts (local
/// test servers): a password must never cross a network in clear text.
/// Returns the URL without a trailing slash, so `https://x/` and
/// `https://x` share a cache entry.
pub fn validate_url(flag: &str, value: &str) -> Result<String> {
    let value = value.trim();
    let bad = |why: &str| Error::usage(format!("{flag} {value:?} is not usable: {why}"));
    let uri: ureq::http::Uri = value
        .parse()
        .map_err(|_| bad("not a URL (expected https://host/...)"))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "credentials in a URL end up in process lists; remove them",
        ));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback(host) => {}
        Some("http") => {
            return Err(bad(
                "plain http would send passwords and tokens unencrypted; use https",
            ));
        }
        _ => return Err(bad("the scheme must be https")),
    }
    if uri.query().is_some() || value.contains('#') {
        return Err(bad("remove the query string or fragment"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_extra_params(raw: &[String]) -> Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    for item in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            Error::usage(format!("--extra-param {item:?} must look like KEY=VALUE"))
        })?;
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::usage(format!(
                "--extra-param {item:?} has an empty key"
            )));
        }
        if RESERVED_PARAMS.contains(&k) {
            return Err(Error::usage(format!(
                "--extra-param cannot set {k:?}: dexcred sets it (use the dedicated flag)"
            )));
        }
        params.push((k.to_string(), v.to_string()));
    }
    params.sort();
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config> {
        let mut argv = vec!["dexcred", "token", "--cache-dir", "/tmp/dexcred-test"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token(t) => Config::from_args(&t.provider, &t.common),
            _ => unreachable!(),
        }
    }

    #[test]
    fn pcd_defaults() {
        let c = config(&["--pcd", "https://pcd.example/", "--username", "a@b"]).unwrap();
        assert_eq!(c.key.url, "https://pcd.example");
        assert_eq!(c.key.client_id, "kubernetes");
        assert_eq!(c.key.connector_id.as_deref(), Some("default"));
        assert_eq!(c.key.scope.as_deref(), Some(pcd::DEFAULT_SCOPE));
        assert_eq!(c.key.user_domain.as_deref(), Some("Default"));
        assert_eq!(c.field, TokenField::IdToken);
        assert_eq!(c.key.grant, "password");
    }

    #[test]
    fn oauth_defaults_and_requirements() {
        let c = config(&["--token-url", "https://kc/token", "--client-id", "svc"]).unwrap();
        assert_eq!(c.key.grant, "client_credentials");
        assert_eq!(c.field, TokenField::AccessToken);
        let e = config(&["--token-url", "https://kc/token"]).unwrap_err();
        assert!(e.message().contains("--client-id"), "{e}");
    }

    #[test]
    fn pcd_without_username_is_a_usage_error() {
        let e = config(&["--pcd", "https://pcd.example"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message().contains("--username"), "{e}");
    }

    #[test]
    fn exactly_one_provider() {
        let e = config(&[]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = config(&[
            "--pcd",
            "https://a",
            "--issuer",
            "https://b",
            "--username",
            "u",
        ])
        .unwrap_err();
        assert!(e.message().contains("--pcd and --issuer"), "{e}");
    }

    #[test]
    fn urls_must_be_https_or_loopback() {
        assert!(validate_url("--pcd", "https://pcd.example/x/").is_ok());
        assert!(validate_url("--pcd", "http://127.0.0.1:8080").is_ok());
        assert!(validate_url("--pcd", "http://localhost:8080").is_ok());
        assert!(validate_url("--pcd", "http://[::1]:8080").is_ok());
        for bad in [
            "http://pcd.example",
            "ftp://x",
            "pcd.example",
            "https://u:p@pcd.example",
            "https://x/?a=b",
            "",
        ] {
            assert!(validate_url("--pcd", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn extra_params_are_sorted_and_checked() {
        let p = parse_extra_params(&["b=2".into(), "a=1=x".into()]).unwrap();
        assert_eq!(
            p,
            vec![("a".into(), "1=x".into()), ("b".into(), "2".into())]
        );
        assert!(parse_extra_params(&["novalue".into()]).is_err());
        assert!(parse_extra_params(&["password=x".into()]).is_err());
    }

    #[test]
    fn key_ignores_flag_order_and_secrets() {
        let a = config(&[
            "--token-url",
            "https://t",
            "--client-id",
            "c",
            "--extra-param",
            "a=1",
            "--extra-param",
            "b=2",
        ])
        .unwrap();
        let b = config(&[
            "--extra-param",
            "b=2",
            "--extra-param",
            "a=1",
            "--client-id",
            "c",
            "--token-url",
            "https://t/",
            "--client-secret-file",
            "/x",
        ])
        .unwrap();
        assert_eq!(a.key, b.key);
    }
}
