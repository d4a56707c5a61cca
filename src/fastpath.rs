//! The cache hit without clap.
//!
//! A cache hit is the product's hot path (kubectl runs the plugin in every
//! kubectl process), and building clap's parser for `kubectl` cost more
//! than everything else dexcred does on a hit. So before clap, this module
//! recognises the plain invocations, `dexcred kubectl …` and
//! `dexcred token …` whose every flag and every `DEXCRED_*` variable it
//! knows, turns them into the very `ProviderArgs`/`CommonArgs` clap would
//! produce, and serves a fresh cache entry. Anything else returns `None`
//! and the full clap path runs: an unknown flag or `DEXCRED_*` variable (so
//! flags added later fall back until they are taught here), `-v`,
//! `--help`, a repeated or empty value, a value clap would reject, a miss,
//! a stale or unreadable entry, any error. The full path then does
//! everything again, and reports errors in its usual words.
//!
//! Equivalence with clap is checked by a property test
//! (`tests/e2e/fastpath.rs`): for random argv and environments, this parser
//! either declines or produces exactly what clap produces.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cache::Loaded;
use crate::cli::{
    ClientAuthArg, CommonArgs, DEFAULT_LOCK_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_USER_DOMAIN, ExchangeArgs, GrantArg, ProviderArgs, TokenFieldArg, TokenFormat,
};
use crate::config::Config;
use crate::environment::Environment;
use crate::protocol::kubectl::{parse_exec_info, render};

/// A recognised invocation.
#[derive(Debug)]
pub struct Invocation {
    pub command: Front,
    pub provider: ProviderArgs,
    pub common: CommonArgs,
}

/// Which front end asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    Kubectl,
    Token(TokenFormat),
}

/// The answer to a cache hit for `args` (argv with the program name) in
/// `env`, for stdout, or `None` for the full path to run.
pub fn serve(args: &[OsString], env: &Environment) -> Option<String> {
    let inv = parse(args, &env.with_prefix("DEXCRED_"))?;
    let config = Config::from_args(&inv.provider, &inv.common, env).ok()?;
    let exec_info = match inv.command {
        Front::Kubectl => {
            let raw = env.var("KUBERNETES_EXEC_INFO");
            Some(parse_exec_info(raw.as_deref()).ok()?)
        }
        Front::Token(_) => None,
    };
    let Ok(Loaded::Hit(entry)) = config.store.load(&config.key) else {
        return None;
    };
    let now = crate::provider::now_secs();
    let token = entry.fresh_token(config.field, now)?;
    let (value, expires_at) = (token.value.expose(), token.renew_at());
    match (inv.command, exec_info) {
        (Front::Token(format), _) => {
            crate::commands::token::render(format, None, config.field, value, expires_at)
        }
        (Front::Kubectl, Some(info)) => render(info.api_version, value, expires_at),
        (Front::Kubectl, None) => return None,
    }
    .ok()
}

/// Variables that hold secrets; read only when a login needs them, never by
/// clap, so they change nothing about a hit.
const SECRET_VARS: &[&str] = &["DEXCRED_PASSWORD", "DEXCRED_OTP", "DEXCRED_CLIENT_SECRET"];

/// Variables of other subcommands, which clap ignores for kubectl and token.
const OTHER_COMMANDS_VARS: &[&str] = &[
    "DEXCRED_GIT_AUTH",
    "DEXCRED_GIT_USERNAME",
    "DEXCRED_TENANT",
    "DEXCRED_REGION",
    "DEXCRED_SERVER",
];

/// The options this parser knows: long flag, variable, and where the value
/// goes. Booleans (`-v`, `--force-refresh`, `--insecure-skip-tls-verify`)
/// are missing on purpose: they make the full path run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Pcd,
    Issuer,
    TokenUrl,
    LogoutUrl,
    RevocationUrl,
    Grant,
    Username,
    UserDomain,
    Project,
    PasswordFile,
    PasswordCommand,
    OtpCommand,
    ClientId,
    ClientSecretFile,
    ClientAuth,
    ConnectorId,
    Scope,
    ExtraParam,
    TokenField,
    CertificateAuthority,
    Timeout,
    LockTimeout,
    LoginTimeout,
    CacheDir,
    Format,
}

const OPTS: &[(&str, &str, Opt)] = &[
    ("pcd", "DEXCRED_PCD", Opt::Pcd),
    ("issuer", "DEXCRED_ISSUER", Opt::Issuer),
    ("token-url", "DEXCRED_TOKEN_URL", Opt::TokenUrl),
    ("logout-url", "DEXCRED_LOGOUT_URL", Opt::LogoutUrl),
    (
        "revocation-url",
        "DEXCRED_REVOCATION_URL",
        Opt::RevocationUrl,
    ),
    ("grant", "DEXCRED_GRANT", Opt::Grant),
    ("username", "DEXCRED_USERNAME", Opt::Username),
    ("user-domain", "DEXCRED_USER_DOMAIN", Opt::UserDomain),
    ("project", "DEXCRED_PROJECT", Opt::Project),
    ("password-file", "DEXCRED_PASSWORD_FILE", Opt::PasswordFile),
    (
        "password-command",
        "DEXCRED_PASSWORD_COMMAND",
        Opt::PasswordCommand,
    ),
    ("otp-command", "DEXCRED_OTP_COMMAND", Opt::OtpCommand),
    ("client-id", "DEXCRED_CLIENT_ID", Opt::ClientId),
    (
        "client-secret-file",
        "DEXCRED_CLIENT_SECRET_FILE",
        Opt::ClientSecretFile,
    ),
    ("client-auth", "DEXCRED_CLIENT_AUTH", Opt::ClientAuth),
    ("connector-id", "DEXCRED_CONNECTOR_ID", Opt::ConnectorId),
    ("scope", "DEXCRED_SCOPE", Opt::Scope),
    ("extra-param", "DEXCRED_EXTRA_PARAM", Opt::ExtraParam),
    ("token-field", "DEXCRED_TOKEN_FIELD", Opt::TokenField),
    (
        "certificate-authority",
        "DEXCRED_CERTIFICATE_AUTHORITY",
        Opt::CertificateAuthority,
    ),
    ("timeout", "DEXCRED_TIMEOUT", Opt::Timeout),
    ("lock-timeout", "DEXCRED_LOCK_TIMEOUT", Opt::LockTimeout),
    ("login-timeout", "DEXCRED_LOGIN_TIMEOUT", Opt::LoginTimeout),
    ("cache-dir", "DEXCRED_CACHE_DIR", Opt::CacheDir),
    ("format", "DEXCRED_FORMAT", Opt::Format),
];

/// Recognises `args` (argv, program name first) with the `DEXCRED_*`
/// variables `env`, or declines with `None`. Pure: the property test
/// compares it with clap.
pub fn parse(args: &[OsString], env: &[(OsString, OsString)]) -> Option<Invocation> {
    let program = std::path::Path::new(args.first()?).file_name()?;
    if program == crate::cli::GIT_HELPER_NAME {
        return None;
    }
    let command = match args.get(1)?.to_str()? {
        "kubectl" => Front::Kubectl,
        "token" => Front::Token(TokenFormat::Raw),
        _ => return None,
    };
    let applies = |opt: Opt| opt != Opt::Format || matches!(command, Front::Token(_));

    // Flags: `--name value` or `--name=value`, each at most once except
    // --extra-param.
    let mut given: Vec<(Opt, &str)> = Vec::new();
    let mut rest = args[2..].iter();
    while let Some(arg) = rest.next() {
        let arg = arg.to_str()?.strip_prefix("--")?;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        let &(_, _, opt) = OPTS.iter().find(|(n, _, o)| *n == name && applies(*o))?;
        let value = match inline {
            Some(v) => v,
            None => rest.next()?.to_str()?,
        };
        if value.is_empty() || value.starts_with('-') || value.contains('\n') {
            return None;
        }
        if opt != Opt::ExtraParam && given.iter().any(|(o, _)| *o == opt) {
            return None;
        }
        given.push((opt, value));
    }

    // Variables: every DEXCRED_* must be known; they fill what the flags
    // left unset.
    let mut from_env: Vec<(Opt, &str)> = Vec::new();
    for (name, value) in env {
        let name = name.to_str()?;
        if SECRET_VARS.contains(&name) || OTHER_COMMANDS_VARS.contains(&name) {
            continue;
        }
        if name == "DEXCRED_FORMAT" && command == Front::Kubectl {
            continue;
        }
        let &(_, _, opt) = OPTS.iter().find(|(_, v, o)| *v == name && applies(*o))?;
        let value = value.to_str()?;
        if value.is_empty() {
            return None;
        }
        from_env.push((opt, value));
    }

    let mut inv = Invocation {
        command,
        provider: ProviderArgs {
            pcd: None,
            issuer: None,
            token_url: None,
            logout_url: None,
            revocation_url: None,
            grant: None,
            username: None,
            user_domain: DEFAULT_USER_DOMAIN.to_string(),
            project: None,
            password_file: None,
            password_command: None,
            otp_command: None,
            client_id: None,
            client_secret_file: None,
            client_auth: ClientAuthArg::Post,
            connector_id: None,
            scope: None,
            extra_params: Vec::new(),
            token_field: None,
            certificate_authority: None,
            insecure_skip_tls_verify: false,
            timeout: DEFAULT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            listen_addresses: Vec::new(),
            browser_command: None,
            force_refresh: false,
            exchange: ExchangeArgs {
                subject_token_file: None,
                subject_token_source: None,
                subject_token_type: None,
                requested_token_type: None,
                audience: None,
            },
        },
        common: CommonArgs {
            cache_dir: None,
            verbose: false,
        },
    };
    for &(_, _, opt) in OPTS {
        let flags: Vec<&str> = given
            .iter()
            .filter(|(o, _)| *o == opt)
            .map(|(_, v)| *v)
            .collect();
        let values: Vec<&str> = if flags.is_empty() {
            match from_env.iter().find(|(o, _)| *o == opt) {
                // The variable holds newline-separated values.
                Some((Opt::ExtraParam, v)) => {
                    let parts: Vec<&str> = v.split('\n').collect();
                    if parts.iter().any(|p| p.is_empty()) {
                        return None;
                    }
                    parts
                }
                Some((_, v)) => vec![*v],
                None => continue,
            }
        } else {
            flags
        };
        set(&mut inv, opt, &values)?;
    }
    Some(inv)
}

/// Stores `values` of `opt` as clap would, or declines.
fn set(inv: &mut Invocation, opt: Opt, values: &[&str]) -> Option<()> {
    let p = &mut inv.provider;
    let one = values.first().copied()?;
    let text = || Some(one.to_string());
    let path = || Some(PathBuf::from(one));
    match opt {
        Opt::Pcd => p.pcd = text(),
        Opt::Issuer => p.issuer = text(),
        Opt::TokenUrl => p.token_url = text(),
        Opt::LogoutUrl => p.logout_url = text(),
        Opt::RevocationUrl => p.revocation_url = text(),
        Opt::Grant => {
            p.grant = Some(match one {
                "password" => GrantArg::Password,
                "client_credentials" | "client-credentials" => GrantArg::ClientCredentials,
                "authorization_code" | "authorization-code" => GrantArg::AuthorizationCode,
                "device_code" | "device-code" => GrantArg::DeviceCode,
                // Token exchange keys the entry by the subject token's
                // identity, which means reading it: the full path does.
                _ => return None,
            })
        }
        Opt::Username => p.username = text(),
        Opt::UserDomain => p.user_domain = one.to_string(),
        Opt::Project => p.project = text(),
        Opt::PasswordFile => p.password_file = path(),
        Opt::PasswordCommand => p.password_command = text(),
        Opt::OtpCommand => p.otp_command = text(),
        Opt::ClientId => p.client_id = text(),
        Opt::ClientSecretFile => p.client_secret_file = path(),
        Opt::ClientAuth => {
            p.client_auth = match one {
                "post" => ClientAuthArg::Post,
                "basic" => ClientAuthArg::Basic,
                "basic-raw" => ClientAuthArg::BasicRaw,
                _ => return None,
            }
        }
        Opt::ConnectorId => p.connector_id = text(),
        Opt::Scope => p.scope = text(),
        Opt::ExtraParam => p.extra_params = values.iter().map(|v| v.to_string()).collect(),
        Opt::TokenField => {
            p.token_field = Some(match one {
                "id_token" | "id-token" => TokenFieldArg::IdToken,
                "access_token" | "access-token" => TokenFieldArg::AccessToken,
                _ => return None,
            })
        }
        Opt::CertificateAuthority => p.certificate_authority = path(),
        Opt::Timeout => p.timeout = crate::cli::parse_seconds(one).ok()?,
        Opt::LockTimeout => p.lock_timeout = crate::cli::parse_seconds(one).ok()?,
        Opt::LoginTimeout => p.login_timeout = crate::cli::parse_seconds(one).ok()?,
        Opt::CacheDir => inv.common.cache_dir = path(),
        Opt::Format => {
            inv.command = Front::Token(match one {
                "raw" => TokenFormat::Raw,
                "header" => TokenFormat::Header,
                "json" => TokenFormat::Json,
                _ => return None,
            })
        }
    }
    Some(())
}
