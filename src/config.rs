//! From command-line flags to what the rest of the program works with: the
//! cache [`Key`], which token to hand out, and (only when a renewal needs
//! it) the provider.
//!
//! Building a [`Config`] is cheap and touches no file, because the cache-hit
//! path builds one on every kubectl call. Secrets in files are read later,
//! by [`Config::provider`] and the password sources, and only on renewal.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::cache::{ExchangeKey, Grant, Key, ProviderKind, Store, TokenField};
use crate::cli::{
    ClientAuthArg, CommonArgs, GrantArg, ProviderArgs, SubjectSourceArg, TokenFieldArg,
    TokenTypeArg,
};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::http::TlsOptions;
use crate::log::Log;
use crate::prompt::Prompter;
use crate::provider::exchange::TokenExchange;
use crate::provider::login;
use crate::provider::oauth::{self, AuthMethod, Endpoint, GrantKind, OAuth};
use crate::provider::pcd::{self, Pcd};
use crate::provider::{Credentials, Provider};
use crate::proxy::ProxyEnv;
use crate::secret::{self, Secret, Sources};
use crate::subject;
use crate::url::{validate_base_url, validate_url};

/// Environment variables that carry secret values themselves. They are read
/// directly, not through clap, so there is no `--password VALUE` flag. The
/// names are defined with the list children never inherit
/// ([`crate::child::SECRET_ENV_VARS`]).
pub use crate::child::{ENV_CLIENT_SECRET, ENV_OTP, ENV_PASSWORD};

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
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    // Browser and device logins set these themselves.
    "code",
    "code_verifier",
    "device_code",
    "redirect_uri",
    "response_type",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

#[derive(Debug, Clone)]
enum Kind {
    Pcd,
    OAuth(Endpoint),
}

impl Kind {
    /// The kind stored in the cache key, from which [`Config::for_key`]
    /// can rebuild it.
    fn key_kind(&self) -> ProviderKind {
        match self {
            Kind::Pcd => ProviderKind::Pcd,
            Kind::OAuth(Endpoint::Issuer(_)) => ProviderKind::Issuer,
            Kind::OAuth(Endpoint::TokenUrl(_)) => ProviderKind::TokenUrl,
        }
    }

    fn from_key(key: &Key) -> Kind {
        match key.provider {
            ProviderKind::Pcd => Kind::Pcd,
            ProviderKind::Issuer => Kind::OAuth(Endpoint::Issuer(key.url.clone())),
            ProviderKind::TokenUrl => Kind::OAuth(Endpoint::TokenUrl(key.url.clone())),
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
    /// Bounds a login that waits on a person (a prompt, a browser or
    /// device-code login) and how long other processes wait for such a
    /// login (`--login-timeout`).
    pub login_timeout: Duration,
    pub timeout: Duration,
    pub tls: TlsOptions,
    /// Where HTTPS_PROXY, NO_PROXY and the client secret are read from, when
    /// a renewal needs them.
    env: Environment,
    /// "alice@example.com at https://pcd-r1.example.com", for prompts and
    /// messages.
    pub account: String,
    kind: Kind,
    logout_url: Option<String>,
    revocation_url: Option<String>,
    auth_method: AuthMethod,
    client_secret_file: Option<PathBuf>,
    /// False for an entry's own configuration (`logout --all`): no client
    /// secret from this run's environment or flags.
    secrets_from_run: bool,
    password: Sources,
    otp: Sources,
    /// Set for `--grant token_exchange`.
    exchange: Option<Exchange>,
    login: login::Settings,
}

/// What a token exchange needs beyond the key: where the subject token is.
#[derive(Debug, Clone)]
struct Exchange {
    subject: Option<subject::Source>,
}

/// A secret given in the environment, with the variable's name.
fn env_secret(env: &Environment, name: &'static str) -> Option<(&'static str, Secret)> {
    env.non_empty(name).map(|v| (name, Secret::new(v)))
}

impl Config {
    pub fn from_args(p: &ProviderArgs, common: &CommonArgs, env: &Environment) -> Result<Config> {
        check_text_inputs(p)?;
        let kind = provider_kind(p)?;
        let is_pcd = matches!(kind, Kind::Pcd);
        let url = match &kind {
            Kind::Pcd => validate_base_url("--pcd", p.pcd.as_deref().unwrap_or_default())?,
            Kind::OAuth(Endpoint::Issuer(u) | Endpoint::TokenUrl(u)) => u.clone(),
        };
        let grant = match (p.grant, &p.username) {
            (Some(GrantArg::TokenExchange), _) => {
                return Config::exchange_from_args(kind, url, p, common, env);
            }
            (Some(GrantArg::ClientCredentials), _) if is_pcd => {
                return Err(Error::usage(
                    "--pcd logs in with a password; --grant client_credentials needs --token-url or --issuer",
                ));
            }
            (Some(g @ (GrantArg::AuthorizationCode | GrantArg::DeviceCode)), _) => {
                interactive_grant(g, &kind)?
            }
            (Some(GrantArg::Password), _) | (None, Some(_)) => Grant::Password,
            // PCD logs in with a password only: without --username that is
            // a usage error below, not a client-credentials login.
            (None, None) if is_pcd => Grant::Password,
            (Some(GrantArg::ClientCredentials), _) | (None, None) => Grant::ClientCredentials,
        };
        let username = non_empty(&p.username);
        if grant == Grant::Password && username.is_none() {
            return Err(Error::usage(
                "--username NAME (or DEXCRED_USERNAME) is required to log in with a password",
            ));
        }
        let client_id = client_id(p, is_pcd)?;
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
            .or_else(|| {
                grant
                    .needs_person()
                    .then(|| oauth::DEFAULT_INTERACTIVE_SCOPE.to_string())
            })
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        let field = match (p.token_field, is_pcd) {
            (Some(TokenFieldArg::IdToken), _) | (None, true) => TokenField::IdToken,
            (Some(TokenFieldArg::AccessToken), _) | (None, false) => TokenField::AccessToken,
        };
        let key = Key {
            provider: kind.key_kind(),
            url: url.clone(),
            grant,
            username: username.clone(),
            user_domain: is_pcd.then(|| p.user_domain.clone()),
            project: if is_pcd { non_empty(&p.project) } else { None },
            client_id,
            connector_id,
            scope,
            extra_params,
            exchange: None,
        };
        Config::assemble(kind, key, field, p, common, env)
    }

    /// `--grant token_exchange`: no user and no password; the subject
    /// token's identity is part of the key, its value never is.
    fn exchange_from_args(
        kind: Kind,
        url: String,
        p: &ProviderArgs,
        common: &CommonArgs,
        env: &Environment,
    ) -> Result<Config> {
        let is_pcd = matches!(kind, Kind::Pcd);
        if given(&p.username).is_some() {
            return Err(Error::usage(
                "--grant token_exchange logs in with a subject token, not as --username; remove it",
            ));
        }
        let client_id = client_id(p, is_pcd)?;
        let connector_id = non_empty(&p.connector_id).ok_or_else(|| {
            Error::usage(
                "--grant token_exchange needs --connector-id ID: the Dex connector that verifies \
                 the subject token",
            )
        })?;
        let x = &p.exchange;
        let field_of = |t: TokenTypeArg| match t {
            TokenTypeArg::IdToken => TokenField::IdToken,
            TokenTypeArg::AccessToken => TokenField::AccessToken,
        };
        let from_token_field = p.token_field.map(|f| match f {
            TokenFieldArg::IdToken => TokenField::IdToken,
            TokenFieldArg::AccessToken => TokenField::AccessToken,
        });
        let requested = match (x.requested_token_type.map(field_of), from_token_field) {
            (Some(r), Some(f)) if r != f => {
                return Err(Error::usage(
                    "--requested-token-type and --token-field disagree; give only --requested-token-type",
                ));
            }
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) if is_pcd => TokenField::IdToken,
            (None, None) => TokenField::AccessToken,
        };
        let audience = non_empty(&x.audience);
        let source = subject::Source::choose(
            env,
            x.subject_token_file.clone(),
            x.subject_token_source == Some(SubjectSourceArg::GithubActions),
        )?;
        let identity = source.identity()?;
        let scope = non_empty(&p.scope)
            .or_else(|| is_pcd.then(|| "openid groups email profile".to_string()))
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "));
        let key = Key {
            provider: kind.key_kind(),
            url,
            grant: Grant::TokenExchange,
            username: None,
            user_domain: None,
            project: None,
            client_id,
            connector_id: Some(connector_id),
            scope,
            extra_params: parse_extra_params(&p.extra_params)?,
            exchange: Some(ExchangeKey {
                subject: identity,
                subject_token_type: x
                    .subject_token_type
                    .map_or(TokenField::IdToken, field_of)
                    .name()
                    .to_string(),
                requested_token_type: requested.name().to_string(),
                audience,
            }),
        };
        let mut config = Config::assemble(kind, key, requested, p, common, env)?;
        config.account = format!("{} at {}", source.describe(), config.key.url);
        config.exchange = Some(Exchange {
            subject: Some(source),
        });
        Ok(config)
    }

    /// The configuration for an existing cache entry (for `logout --all`):
    /// everything comes from the entry (its key, its saved endpoints, PCD's
    /// stored client secret). Only this machine's connection settings come
    /// from the flags: the CA file and the time limits. This run's secrets
    /// (`--client-secret-file`, `DEXCRED_CLIENT_SECRET`), `--logout-url`,
    /// `--client-auth` and `--insecure-skip-tls-verify` were meant for one
    /// identity provider and are never applied to every entry: that would
    /// send one server's secret, and every entry's refresh token, to
    /// whichever server they name.
    pub fn for_key(
        key: Key,
        p: &ProviderArgs,
        common: &CommonArgs,
        env: &Environment,
    ) -> Result<Config> {
        let kind = Kind::from_key(&key);
        let field = match (&key.exchange, &kind) {
            (Some(x), _) if x.requested_token_type == TokenField::IdToken.name() => {
                TokenField::IdToken
            }
            (Some(_), _) => TokenField::AccessToken,
            (None, Kind::Pcd) => TokenField::IdToken,
            (None, Kind::OAuth(_)) => TokenField::AccessToken,
        };
        let own = ProviderArgs {
            logout_url: None,
            revocation_url: None,
            client_secret_file: None,
            client_auth: ClientAuthArg::Post,
            password_file: None,
            password_command: None,
            otp_command: None,
            insecure_skip_tls_verify: false,
            ..p.clone()
        };
        let mut config = Config::assemble(kind, key, field, &own, common, env)?;
        if config.key.exchange.is_some() {
            config.exchange = Some(Exchange { subject: None });
        }
        config.secrets_from_run = false;
        Ok(config)
    }

    /// The flags and variables `logout --all` does not apply to every entry
    /// (see [`Config::for_key`]), as given in this run, for a warning.
    pub fn ignored_by_for_key(p: &ProviderArgs, env: &Environment) -> Vec<&'static str> {
        let mut ignored = Vec::new();
        if non_empty(&p.logout_url).is_some() {
            ignored.push("--logout-url");
        }
        if non_empty(&p.revocation_url).is_some() {
            ignored.push("--revocation-url");
        }
        if p.client_secret_file.is_some() {
            ignored.push("--client-secret-file");
        }
        if env_secret(env, ENV_CLIENT_SECRET).is_some() {
            ignored.push(ENV_CLIENT_SECRET);
        }
        if p.client_auth != ClientAuthArg::Post {
            ignored.push("--client-auth");
        }
        if p.insecure_skip_tls_verify {
            ignored.push("--insecure-skip-tls-verify");
        }
        ignored
    }

    fn assemble(
        kind: Kind,
        key: Key,
        field: TokenField,
        p: &ProviderArgs,
        common: &CommonArgs,
        env: &Environment,
    ) -> Result<Config> {
        let logout_url = match non_empty(&p.logout_url) {
            Some(u) => Some(validate_url("--logout-url", &u)?),
            None => None,
        };
        let revocation_url = match non_empty(&p.revocation_url) {
            Some(u) => Some(validate_url("--revocation-url", &u)?),
            None => None,
        };
        if p.client_auth == ClientAuthArg::BasicRaw && key.client_id.contains(':') {
            return Err(Error::usage(format!(
                "--client-auth basic-raw cannot send the client id {:?}: raw HTTP Basic splits \
                 at the first ':' (use --client-auth basic or post)",
                key.client_id
            )));
        }
        let login = login_settings(p, env)?;
        let account = match &key.username {
            Some(u) => format!("{u} at {}", key.url),
            None => format!("client {} at {}", key.client_id, key.url),
        };
        Ok(Config {
            key,
            field,
            store: Store::at(common.cache_dir.as_deref(), env)?,
            log: Log::new(common.verbose),
            force_refresh: p.force_refresh,
            lock_timeout: Duration::from_secs(p.lock_timeout),
            login_timeout: Duration::from_secs(p.login_timeout),
            timeout: Duration::from_secs(p.timeout),
            tls: TlsOptions {
                certificate_authority: p.certificate_authority.clone(),
                insecure_skip_verify: p.insecure_skip_tls_verify,
            },
            env: env.clone(),
            account,
            kind,
            logout_url,
            revocation_url,
            auth_method: match p.client_auth {
                ClientAuthArg::Post => AuthMethod::Post,
                ClientAuthArg::Basic => AuthMethod::Basic,
                ClientAuthArg::BasicRaw => AuthMethod::BasicRaw,
            },
            client_secret_file: p.client_secret_file.clone(),
            secrets_from_run: true,
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
            exchange: None,
            login,
        })
    }

    /// Builds the provider, reading the client secret if one is configured.
    /// Called only when tokens must be obtained.
    pub fn provider(&self) -> Result<Box<dyn Provider>> {
        let client_secret = self.client_secret()?;
        let key = &self.key;
        let grant = match key.grant {
            Grant::Password => GrantKind::Password,
            Grant::ClientCredentials => GrantKind::ClientCredentials,
            Grant::AuthorizationCode => GrantKind::AuthorizationCode,
            Grant::DeviceCode => GrantKind::DeviceCode,
            Grant::TokenExchange => {
                return Ok(Box::new(self.exchange_provider(client_secret)));
            }
        };
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
                revocation_url: self.revocation_url.clone(),
                grant,
                username: key.username.clone(),
                client_id: key.client_id.clone(),
                client_secret,
                auth_method: self.auth_method,
                scope: key.scope.clone(),
                extra_params: key.extra_params.clone(),
                field: self.field,
                login: self.login.clone(),
            }),
        })
    }

    fn exchange_provider(&self, client_secret: Option<Secret>) -> TokenExchange {
        let key = &self.key;
        let xk = key.exchange.clone();
        let field = |name: Option<&str>| {
            if name == Some(TokenField::AccessToken.name()) {
                TokenField::AccessToken
            } else {
                TokenField::IdToken
            }
        };
        TokenExchange {
            endpoint: match &self.kind {
                Kind::Pcd => Endpoint::TokenUrl(format!("{}/dex/token", key.url)),
                Kind::OAuth(endpoint) => endpoint.clone(),
            },
            client_id: key.client_id.clone(),
            client_auth: self.auth_method.client_auth(client_secret),
            connector_id: key.connector_id.clone().unwrap_or_default(),
            subject: self.exchange.as_ref().and_then(|x| x.subject.clone()),
            subject_token_type: field(xk.as_ref().map(|k| k.subject_token_type.as_str())),
            requested: self.field,
            audience: xk.and_then(|k| k.audience),
            scope: key.scope.clone(),
            extra_params: key.extra_params.clone(),
            via_pcd: matches!(self.kind, Kind::Pcd),
        }
    }

    /// The `dexcred login …` command that logs this identity in at a
    /// terminal, for messages about logins that need a person.
    pub fn login_command(&self) -> String {
        let mut command = format!(
            "dexcred login {} {} --client-id {} --grant {}",
            self.provider_flag(),
            self.key.url,
            self.key.client_id,
            self.key.grant.as_str()
        );
        if let Some(user) = &self.key.username {
            command.push_str(&format!(" --username {user}"));
        }
        command
    }

    fn client_secret(&self) -> Result<Option<Secret>> {
        if !self.secrets_from_run {
            return Ok(None);
        }
        if let Some((_, value)) = env_secret(&self.env, ENV_CLIENT_SECRET) {
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

    /// HTTPS_PROXY, NO_PROXY and friends: read only when a request is made.
    pub fn proxy(&self) -> ProxyEnv {
        ProxyEnv::from_lookup(|name| self.env.var(name))
    }

    /// A secret from the environment, unless this configuration is an
    /// entry's own (`logout --all`), which takes no secret from this run.
    fn env_secret(&self, name: &'static str) -> Option<(&'static str, Secret)> {
        self.secrets_from_run
            .then(|| env_secret(&self.env, name))
            .flatten()
    }

    /// The credential sources for this run. `prompter` is the front end's:
    /// it says whether a person may be asked (kubectl's `spec.interactive`,
    /// git's terminal rules, …) and asks only if a secret must be asked for.
    pub fn credentials(&self, prompter: Rc<dyn Prompter>) -> Credentials {
        Credentials::new(
            Sources {
                env: self.env_secret(ENV_PASSWORD),
                ..self.password.clone()
            },
            Sources {
                env: self.env_secret(ENV_OTP),
                ..self.otp.clone()
            },
            prompter,
            self.timeout,
            self.login_timeout,
            self.account.clone(),
        )
    }
}

/// Browser and device logins find their endpoints by discovery, so they
/// need `--issuer`.
fn interactive_grant(grant: GrantArg, kind: &Kind) -> Result<Grant> {
    let (kind_of, name) = match grant {
        GrantArg::DeviceCode => (Grant::DeviceCode, "device_code"),
        _ => (Grant::AuthorizationCode, "authorization_code"),
    };
    match kind {
        Kind::OAuth(Endpoint::Issuer(_)) => Ok(kind_of),
        _ => Err(Error::usage(format!(
            "--grant {name} finds its endpoints by OpenID discovery: use --issuer URL (not --pcd or --token-url)"
        ))),
    }
}

/// `--listen-address`, `--browser-command` and `--login-timeout`, checked
/// before anything touches the network.
fn login_settings(p: &ProviderArgs, env: &Environment) -> Result<login::Settings> {
    let listen = p
        .listen_addresses
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(login::parse_listen_address)
        .collect::<Result<Vec<_>>>()?;
    let browser_command = match given(&p.browser_command) {
        Some(text) => Some(login::parse_command("--browser-command", text)?),
        None => None,
    };
    Ok(login::Settings {
        listen,
        browser_command,
        timeout: Duration::from_secs(p.login_timeout),
        env: env.clone(),
    })
}

/// A flag's value when it was given and is not blank.
pub fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn non_empty(value: &Option<String>) -> Option<String> {
    given(value).map(str::to_string)
}

/// `--client-id`, which PCD defaults to `kubernetes` and other providers
/// require.
fn client_id(p: &ProviderArgs, is_pcd: bool) -> Result<String> {
    match (non_empty(&p.client_id), is_pcd) {
        (Some(id), _) => Ok(id),
        (None, true) => Ok("kubernetes".to_string()),
        (None, false) => Err(Error::usage(
            "--client-id ID (or DEXCRED_CLIENT_ID) is required with --issuer or --token-url",
        )),
    }
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
        ["--issuer"] => Ok(Kind::OAuth(Endpoint::Issuer(validate_base_url(
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

/// Every text flag that ends up in a request, a cache key or a message must
/// be free of control characters. A newline or NUL in a user name or client
/// id is always a mistake (a pasted line, a `$(…)` with a trailing newline
/// kept by quoting); caught here it is a usage error (exit 2) before any
/// request, not a confusing refusal from the server after one.
fn check_text_inputs(p: &ProviderArgs) -> Result<()> {
    let fields: [(&str, Option<&str>); 6] = [
        ("--username", p.username.as_deref()),
        ("--user-domain", Some(p.user_domain.as_str())),
        ("--project", p.project.as_deref()),
        ("--client-id", p.client_id.as_deref()),
        ("--connector-id", p.connector_id.as_deref()),
        ("--scope", p.scope.as_deref()),
    ];
    for (flag, value) in fields {
        if let Some(value) = value {
            check_text(flag, value)?;
        }
    }
    for param in &p.extra_params {
        check_text("--extra-param", param)?;
    }
    Ok(())
}

/// Refuses a value with a control character (newline, CR, NUL, ESC, …),
/// naming the flag and showing the value escaped.
pub fn check_text(flag: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::usage(format!(
            "{flag} {:?} contains a control character (a newline?); pass the value on its own",
            value
        )));
    }
    Ok(())
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
            Command::Token(t) => Config::from_args(&t.provider, &t.common, &Environment::default()),
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
        assert_eq!(c.key.grant, Grant::Password);
    }

    #[test]
    fn oauth_defaults_and_requirements() {
        let c = config(&["--token-url", "https://kc/token", "--client-id", "svc"]).unwrap();
        assert_eq!(c.key.grant, Grant::ClientCredentials);
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
    fn endpoint_urls_keep_their_slash_and_basic_raw_needs_a_plain_id() {
        let c = config(&["--token-url", "https://h/o/token/", "--client-id", "c"]).unwrap();
        assert_eq!(c.key.url, "https://h/o/token/");
        let c = config(&["--issuer", "https://h/o/", "--client-id", "c"]).unwrap();
        assert_eq!(c.key.url, "https://h/o");
        let raw = ["--token-url", "https://h/t", "--client-auth", "basic-raw"];
        assert!(config(&[&raw[..], &["--client-id", "a:b"]].concat()).is_err());
        assert!(config(&[&raw[..], &["--client-id", "a+b"]].concat()).is_ok());
    }

    #[test]
    fn control_characters_in_text_flags_are_usage_errors() {
        for args in [
            ["--username", "alice\n"],
            ["--client-id", "kube\rrnetes"],
            ["--project", "p\u{0}"],
            ["--extra-param", "a=b\u{1b}c"],
        ] {
            let mut all = vec!["--pcd", "https://pcd.example"];
            all.extend(args);
            let e = config(&all).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            assert!(e.message().contains(args[0]), "{e}");
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
    fn browser_and_device_grants_need_an_issuer_and_default_their_scope() {
        for grant in ["authorization_code", "device_code", "device-code"] {
            let c = config(&[
                "--issuer",
                "https://idp.example",
                "--client-id",
                "kube",
                "--grant",
                grant,
            ])
            .unwrap();
            assert_eq!(c.key.grant.as_str(), grant.replace('-', "_"));
            assert_eq!(c.key.scope.as_deref(), Some("openid offline_access"));
            assert_eq!(c.login_timeout, Duration::from_secs(300));
            assert!(c.provider().unwrap().uses_refresh_tokens());
            assert!(
                c.login_command().contains("--grant"),
                "{}",
                c.login_command()
            );
            for other in ["--token-url", "--pcd"] {
                let e = config(&[
                    other,
                    "https://idp.example",
                    "--client-id",
                    "kube",
                    "--username",
                    "u",
                    "--grant",
                    grant,
                ])
                .unwrap_err();
                assert_eq!(e.exit_code(), 2);
                assert!(e.message().contains("--issuer"), "{e}");
            }
        }
    }

    #[test]
    fn login_flags_are_checked_before_any_request() {
        let base = [
            "--issuer",
            "https://idp.example",
            "--client-id",
            "kube",
            "--grant",
            "authorization_code",
        ];
        let with = |extra: &[&str]| config(&[&base[..], extra].concat());
        let c = with(&[
            "--listen-address",
            "127.0.0.1:8000",
            "--listen-address",
            "[::1]:8000",
            "--browser-command",
            "my-browser --flag",
            "--login-timeout",
            "2m",
        ])
        .unwrap();
        assert_eq!(c.login.listen, ["127.0.0.1:8000", "[::1]:8000"]);
        assert_eq!(
            c.login.browser_command.as_deref(),
            Some(&["my-browser".to_string(), "--flag".to_string()][..])
        );
        assert_eq!(c.login_timeout, Duration::from_secs(120));
        for bad in [
            &["--listen-address", "0.0.0.0:8000"][..],
            &["--browser-command", "open 'unclosed"],
            &["--extra-param", "code_verifier=x"],
            &["--extra-param", "redirect_uri=https://evil"],
        ] {
            assert_eq!(with(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
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
            "https://t",
            "--client-secret-file",
            "/x",
        ])
        .unwrap();
        assert_eq!(a.key, b.key);
    }
}
