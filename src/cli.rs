//! The command line, defined once with clap's derive API.
//!
//! Provider flags are one struct ([`ProviderArgs`]) flattened into every
//! command that talks to an identity provider, so `kubectl`, `git`, `token`,
//! `login` and `logout` accept exactly the same flags and environment
//! variables. Every flag can also be set as `DEXCRED_<FLAG>` (flag wins):
//! pipelines set the environment, kubeconfigs pass arguments.
//!
//! The same definitions generate the shell completions and the man page.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// `dexcred --version`: the crate version and the git commit it was built
/// from (set by build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DEXCRED_BUILD_COMMIT"),
    ")"
);

/// Defaults of `--user-domain`, `--timeout` and `--lock-timeout`, named so
/// that `dexcred kubeconfig` can leave defaulted flags out of exec args.
pub const DEFAULT_USER_DOMAIN: &str = "Default";
pub const DEFAULT_TIMEOUT: u64 = 30;
pub const DEFAULT_LOCK_TIMEOUT: u64 = 60;
/// Default of `--login-timeout`: long enough for a person to type a
/// password or finish a browser or device-code login.
pub const DEFAULT_LOGIN_TIMEOUT: u64 = 300;

const EXAMPLES: &str = "\
Examples:
  # kubectl: the exec entry of a kubeconfig user (see `dexcred kubeconfig`)
  dexcred kubectl --pcd https://pcd-r1.example.com --username alice@example.com

  # git: a credential helper for one git server (it answers only for that host)
  git config --global credential.https://git.example.com.helper \\
      'dexcred --git-host git.example.com --pcd https://pcd-r1.example.com --username alice@example.com'

  # scripts: a bearer token for curl, from the same cache, never in argv
  dexcred token --format curl --pcd https://pcd-r1.example.com \\
      --username alice@example.com | curl -K - https://api.example.com/

Passwords come from DEXCRED_PASSWORD, --password-file, --password-command or a
terminal prompt, never from a command-line value.
The manual: `man dexcred`, or `dexcred man | man -l -` after a source install.
Exit codes: 0 ok, 2 usage, 3 authentication refused or login required,
4 identity provider unreachable or broken, 5 local problem (cache, lock, files).";

#[derive(Debug, Parser)]
#[command(
    name = "dexcred",
    version = VERSION,
    about = "Bearer tokens from Dex/OIDC identity providers for kubectl, git and scripts",
    long_about = "Bearer tokens from Dex/OIDC identity providers for kubectl, git and scripts.\n\n\
        dexcred logs in once (Platform9 PCD through Keystone and Dex, Keycloak, or any OAuth 2.0 \
        token endpoint), keeps the tokens in a private, locked cache, renews them with the \
        refresh token before they expire, and hands them to kubectl (exec credential plugin), \
        git (credential helper) and scripts.",
    after_help = EXAMPLES,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `defer`: clap builds a subcommand's arguments only when that subcommand
/// runs, so a cache hit does not pay for defining all the others.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Print an ExecCredential for kubectl (use in a kubeconfig `exec` entry)
    Kubectl(KubectlArgs),
    /// Act as a git credential helper: `dexcred git get|store|erase|capability`
    Git(GitArgs),
    /// Print the token for scripts
    Token(TokenArgs),
    /// Log in now (prompting at a terminal), fill the cache and show who you are
    Login(LoginArgs),
    /// End the session at the server where possible and delete the cached tokens
    Logout(LogoutArgs),
    /// List the cache entries: who, where, and until when (never the tokens)
    Status(StatusArgs),
    /// Print or merge a kubeconfig (cluster, user, context) for a PCD-K cluster
    Kubeconfig(KubeconfigArgs),
    /// Print or run the git config commands for one git host (URL-scoped helper)
    Gitconfig(GitconfigArgs),
    /// Print shell completions
    Completions(CompletionsArgs),
    /// Print the man page (roff): `dexcred man | man -l -`
    Man,
}

// Where the cache lives and how talkative to be; shared by every command.
// (A plain comment, not a doc comment: clap turns a flattened struct's doc
// comment into the `about` of every deferred subcommand that flattens it.)
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Cache directory [default: $XDG_CACHE_HOME/dexcred or ~/.cache/dexcred]
    #[arg(
        long,
        env = "DEXCRED_CACHE_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,

    /// Explain what happens on stderr (tokens shown only as fingerprints)
    #[arg(
        short,
        long,
        env = "DEXCRED_VERBOSE",
        hide_env_values = true,
        value_parser = FalseyValueParser::new(),
        default_value_t = false
    )]
    pub verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrantArg {
    Password,
    #[value(name = "client_credentials", alias = "client-credentials")]
    ClientCredentials,
    /// RFC 8693: trade a CI system's identity token for one from Dex
    #[value(name = "token_exchange", alias = "token-exchange")]
    TokenExchange,
    /// Browser login: authorization code with PKCE and a loopback redirect
    #[value(name = "authorization_code", alias = "authorization-code")]
    AuthorizationCode,
    /// Device authorization grant (RFC 8628): a code to enter on another device
    #[value(name = "device_code", alias = "device-code")]
    DeviceCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthArg {
    /// client_id and client_secret as form fields
    Post,
    /// HTTP Basic as RFC 6749 §2.3.1 says: id and secret form-urlencoded, then base64 (Dex, Keycloak)
    Basic,
    /// HTTP Basic of the raw `id:secret`, not form-urlencoded (many other services)
    #[value(name = "basic-raw", alias = "basic_raw")]
    BasicRaw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFieldArg {
    #[value(name = "id_token", alias = "id-token")]
    IdToken,
    #[value(name = "access_token", alias = "access-token")]
    AccessToken,
}

// Which identity provider, which account, and how to reach it.
// (A plain comment, not a doc comment: clap turns a flattened struct's doc
// comment into the `about` of every deferred subcommand that flattens it.)
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// Platform9 PCD deployment URL, e.g. https://pcd-r1.example.com (Keystone → Dex)
    #[arg(
        long,
        env = "DEXCRED_PCD",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Identity provider"
    )]
    pub pcd: Option<String>,

    /// OpenID Connect issuer URL; endpoints come from its discovery document
    #[arg(
        long,
        env = "DEXCRED_ISSUER",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Identity provider"
    )]
    pub issuer: Option<String>,

    /// OAuth 2.0 token endpoint URL
    #[arg(
        long,
        env = "DEXCRED_TOKEN_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Identity provider"
    )]
    pub token_url: Option<String>,

    /// Keycloak-style logout endpoint (derived from Keycloak token URLs and discovery)
    #[arg(
        long,
        env = "DEXCRED_LOGOUT_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Identity provider"
    )]
    pub logout_url: Option<String>,

    /// RFC 7009 token revocation endpoint used by logout (else found by discovery)
    #[arg(
        long,
        env = "DEXCRED_REVOCATION_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Identity provider"
    )]
    pub revocation_url: Option<String>,

    /// OAuth grant [default: password with --username, else client_credentials]
    #[arg(
        long,
        env = "DEXCRED_GRANT",
        hide_env_values = true,
        value_enum,
        help_heading = "Identity provider"
    )]
    pub grant: Option<GrantArg>,

    /// User name (for PCD, the Keystone user, usually an email address)
    #[arg(
        long,
        env = "DEXCRED_USERNAME",
        hide_env_values = true,
        value_name = "NAME",
        help_heading = "Account"
    )]
    pub username: Option<String>,

    /// Keystone user domain (PCD)
    #[arg(
        long,
        env = "DEXCRED_USER_DOMAIN",
        hide_env_values = true,
        value_name = "NAME",
        default_value = DEFAULT_USER_DOMAIN,
        help_heading = "Account"
    )]
    pub user_domain: String,

    /// Keystone project to scope the login to (PCD)
    #[arg(
        long,
        env = "DEXCRED_PROJECT",
        hide_env_values = true,
        value_name = "NAME",
        help_heading = "Account"
    )]
    pub project: Option<String>,

    /// Read the password from the first line of FILE (DEXCRED_PASSWORD, if set, wins)
    #[arg(
        long,
        env = "DEXCRED_PASSWORD_FILE",
        hide_env_values = true,
        value_name = "FILE",
        help_heading = "Account"
    )]
    pub password_file: Option<PathBuf>,

    /// Run CMD with /bin/sh and use the first line of its output as the password
    #[arg(
        long,
        env = "DEXCRED_PASSWORD_COMMAND",
        hide_env_values = true,
        value_name = "CMD",
        help_heading = "Account"
    )]
    pub password_command: Option<String>,

    /// Run CMD for the one-time code (DEXCRED_OTP, if set, wins); sent as `otp`
    #[arg(
        long,
        env = "DEXCRED_OTP_COMMAND",
        hide_env_values = true,
        value_name = "CMD",
        help_heading = "Account"
    )]
    pub otp_command: Option<String>,

    /// OAuth client id [default: kubernetes with --pcd]
    #[arg(
        long,
        env = "DEXCRED_CLIENT_ID",
        hide_env_values = true,
        value_name = "ID",
        help_heading = "Client"
    )]
    pub client_id: Option<String>,

    /// Read the client secret from FILE (or set DEXCRED_CLIENT_SECRET); with --pcd this skips Keystone
    #[arg(
        long,
        env = "DEXCRED_CLIENT_SECRET_FILE",
        hide_env_values = true,
        value_name = "FILE",
        help_heading = "Client"
    )]
    pub client_secret_file: Option<PathBuf>,

    /// How the client secret is sent: form fields (post), HTTP Basic per RFC 6749 (basic) or raw (basic-raw)
    #[arg(
        long,
        env = "DEXCRED_CLIENT_AUTH",
        hide_env_values = true,
        value_enum,
        default_value = "post",
        help_heading = "Client"
    )]
    pub client_auth: ClientAuthArg,

    /// Dex connector (PCD) [default: default]
    #[arg(
        long,
        env = "DEXCRED_CONNECTOR_ID",
        hide_env_values = true,
        value_name = "ID",
        help_heading = "Client"
    )]
    pub connector_id: Option<String>,

    /// Space-separated scopes [default with --pcd: openid offline_access groups email profile]
    #[arg(
        long,
        env = "DEXCRED_SCOPE",
        hide_env_values = true,
        value_name = "SCOPES",
        help_heading = "Client"
    )]
    pub scope: Option<String>,

    /// Extra form field for token requests, e.g. audience=api (repeatable; newline-separated in the env var)
    #[arg(
        long = "extra-param",
        env = "DEXCRED_EXTRA_PARAM",
        hide_env_values = true,
        value_name = "KEY=VALUE",
        value_delimiter = '\n',
        help_heading = "Client"
    )]
    pub extra_params: Vec<String>,

    /// Which token to hand out [default: id_token with --pcd, else access_token]
    #[arg(
        long,
        env = "DEXCRED_TOKEN_FIELD",
        hide_env_values = true,
        value_enum,
        help_heading = "Client"
    )]
    pub token_field: Option<TokenFieldArg>,

    /// PEM file of CA certificates to trust in addition to the system store
    #[arg(
        long,
        env = "DEXCRED_CERTIFICATE_AUTHORITY",
        hide_env_values = true,
        value_name = "FILE",
        help_heading = "Connection"
    )]
    pub certificate_authority: Option<PathBuf>,

    /// Do not verify the identity provider's TLS certificate (dangerous; warns)
    #[arg(
        long,
        env = "DEXCRED_INSECURE_SKIP_TLS_VERIFY",
        hide_env_values = true,
        value_parser = FalseyValueParser::new(),
        default_value_t = false,
        help_heading = "Connection"
    )]
    pub insecure_skip_tls_verify: bool,

    /// Time limit for each request to the identity provider, in seconds
    #[arg(
        long,
        env = "DEXCRED_TIMEOUT",
        hide_env_values = true,
        value_name = "SECS",
        default_value_t = DEFAULT_TIMEOUT,
        value_parser = parse_seconds,
        help_heading = "Connection"
    )]
    pub timeout: u64,

    /// Longest wait for another dexcred process renewing the same entry, in seconds
    #[arg(
        long,
        env = "DEXCRED_LOCK_TIMEOUT",
        hide_env_values = true,
        value_name = "SECS",
        default_value_t = DEFAULT_LOCK_TIMEOUT,
        value_parser = parse_seconds,
        help_heading = "Connection"
    )]
    pub lock_timeout: u64,

    /// Longest wait for a person during a login (a prompt, a browser or device-code login; another process's login), in seconds
    #[arg(
        long,
        env = "DEXCRED_LOGIN_TIMEOUT",
        hide_env_values = true,
        value_name = "SECS",
        default_value_t = DEFAULT_LOGIN_TIMEOUT,
        value_parser = parse_seconds,
        help_heading = "Connection"
    )]
    pub login_timeout: u64,

    /// Loopback address for the browser redirect, e.g. 127.0.0.1:8000 (repeatable, tried in order; comma-separated in the env var) [default: 127.0.0.1 on a free port]
    #[arg(
        long = "listen-address",
        env = "DEXCRED_LISTEN_ADDRESS",
        hide_env_values = true,
        value_name = "HOST:PORT",
        value_delimiter = ',',
        help_heading = "Browser and device login"
    )]
    pub listen_addresses: Vec<String>,

    /// Command that opens the login URL (appended as its last argument) [default: $BROWSER, xdg-open or open]
    #[arg(
        long,
        env = "DEXCRED_BROWSER_COMMAND",
        hide_env_values = true,
        value_name = "CMD",
        help_heading = "Browser and device login"
    )]
    pub browser_command: Option<String>,

    /// Renew now (refresh token first, like an expired entry) instead of using the cache
    #[arg(
        long,
        env = "DEXCRED_FORCE_REFRESH",
        hide_env_values = true,
        value_parser = FalseyValueParser::new(),
        default_value_t = false,
        help_heading = "Connection"
    )]
    pub force_refresh: bool,

    #[command(flatten)]
    pub exchange: ExchangeArgs,
}

/// The two token types Dex exchanges, by their short names or RFC 8693 URNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenTypeArg {
    #[value(
        name = "id_token",
        alias = "id-token",
        alias = "urn:ietf:params:oauth:token-type:id_token"
    )]
    IdToken,
    #[value(
        name = "access_token",
        alias = "access-token",
        alias = "urn:ietf:params:oauth:token-type:access_token"
    )]
    AccessToken,
}

/// Where a subject token comes from besides a file or DEXCRED_SUBJECT_TOKEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubjectSourceArg {
    /// GitHub Actions' OIDC endpoint (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN)
    #[value(name = "github-actions", alias = "github_actions")]
    GithubActions,
}

// `--grant token_exchange`: where the subject token comes from and what to
// ask for. (A plain comment: see CommonArgs.)
#[derive(Debug, Clone, Args)]
pub struct ExchangeArgs {
    /// Read the subject token from FILE on every exchange (or set DEXCRED_SUBJECT_TOKEN)
    #[arg(
        long,
        env = "DEXCRED_SUBJECT_TOKEN_FILE",
        hide_env_values = true,
        value_name = "FILE",
        help_heading = "Token exchange"
    )]
    pub subject_token_file: Option<PathBuf>,

    /// Fetch the subject token from the CI system
    #[arg(
        long,
        env = "DEXCRED_SUBJECT_TOKEN_SOURCE",
        hide_env_values = true,
        value_enum,
        help_heading = "Token exchange"
    )]
    pub subject_token_source: Option<SubjectSourceArg>,

    /// What the subject token is [default: id_token]
    #[arg(
        long,
        env = "DEXCRED_SUBJECT_TOKEN_TYPE",
        hide_env_values = true,
        value_enum,
        help_heading = "Token exchange"
    )]
    pub subject_token_type: Option<TokenTypeArg>,

    /// The token to ask for and hand out [default: id_token with --pcd, else access_token]
    #[arg(
        long,
        env = "DEXCRED_REQUESTED_TOKEN_TYPE",
        hide_env_values = true,
        value_enum,
        help_heading = "Token exchange"
    )]
    pub requested_token_type: Option<TokenTypeArg>,

    /// Audience: sent with the exchange, and asked of GitHub Actions for its token
    #[arg(
        long,
        env = "DEXCRED_AUDIENCE",
        hide_env_values = true,
        value_name = "AUD",
        help_heading = "Token exchange"
    )]
    pub audience: Option<String>,
}

/// Accepts `30`, `30s`, `2m`.
pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, factor) = if let Some(n) = t.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1)
    } else {
        (t, 1)
    };
    match number.trim().parse::<u64>() {
        Ok(n) if n > 0 && n <= 3600 => Ok(n * factor),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 1 and 3600 (e.g. 30, 30s, 2m)"
        )),
    }
}

#[derive(Debug, Clone, Args)]
pub struct KubectlArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GitAuthArg {
    /// Bearer when git advertises it (git 2.46+), else Basic
    Auto,
    /// Always Bearer (fails with git older than 2.46)
    Bearer,
    /// Always Basic: --git-username and the token as password
    Basic,
}

#[derive(Debug, Clone, Args)]
pub struct GitArgs {
    /// The action git asks for: get, store, erase or capability (others are ignored)
    #[arg(value_name = "ACTION")]
    pub action: String,

    /// How the token is given to git
    #[arg(
        long,
        env = "DEXCRED_GIT_AUTH",
        hide_env_values = true,
        value_enum,
        default_value = "auto",
        help_heading = "Git"
    )]
    pub git_auth: GitAuthArg,

    /// User name sent with the token as password in Basic mode
    #[arg(
        long,
        env = "DEXCRED_GIT_USERNAME",
        hide_env_values = true,
        value_name = "NAME",
        default_value = "oauth2",
        help_heading = "Git"
    )]
    pub git_username: String,

    /// Answer only for this git host (HOST or HOST:PORT; repeatable; comma-separated in the env
    /// var) [default: the URLs of git's credential.<url>.helper entries that run dexcred]
    #[arg(
        long = "git-host",
        env = "DEXCRED_GIT_HOST",
        hide_env_values = true,
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        help_heading = "Git"
    )]
    pub git_hosts: Vec<String>,

    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The token alone
    Raw,
    /// `Authorization: Bearer <token>`
    Header,
    /// {"token":…,"token_type":"Bearer","expiry":…}
    Json,
    /// A curl config line (`header = "…"`), for `curl -K -`
    Curl,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Output format
    #[arg(
        long,
        env = "DEXCRED_FORMAT",
        hide_env_values = true,
        value_enum,
        default_value = "raw"
    )]
    pub format: TokenFormat,

    /// Header for --format header/curl: `NAME: <token>` instead of `Authorization: Bearer <token>`
    #[arg(
        long,
        env = "DEXCRED_HEADER_NAME",
        hide_env_values = true,
        value_name = "NAME",
        help_heading = "Output"
    )]
    pub header_name: Option<String>,

    /// Hand out a personal access token (from DEXCRED_PAT, --pat-file, --pat-command or a prompt)
    #[arg(long, help_heading = "Personal access token")]
    pub pat: bool,

    /// Read the personal access token from the first line of FILE (implies --pat)
    #[arg(
        long,
        env = "DEXCRED_PAT_FILE",
        hide_env_values = true,
        value_name = "FILE",
        help_heading = "Personal access token"
    )]
    pub pat_file: Option<PathBuf>,

    /// Run CMD with /bin/sh; its first output line is the personal access token (implies --pat)
    #[arg(
        long,
        env = "DEXCRED_PAT_COMMAND",
        hide_env_values = true,
        value_name = "CMD",
        help_heading = "Personal access token"
    )]
    pub pat_command: Option<String>,

    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// Log out of every cache entry
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KubeconfigArgs {
    /// PCD-K tenant: with --region, the server is {pcd}/oidc-proxy/{tenant}/{region}
    #[arg(
        long,
        env = "DEXCRED_TENANT",
        hide_env_values = true,
        value_name = "TENANT",
        help_heading = "Cluster"
    )]
    pub tenant: Option<String>,

    /// PCD-K region
    #[arg(
        long,
        env = "DEXCRED_REGION",
        hide_env_values = true,
        value_name = "REGION",
        help_heading = "Cluster"
    )]
    pub region: Option<String>,

    /// The cluster's API server URL (overrides --tenant/--region)
    #[arg(
        long,
        env = "DEXCRED_SERVER",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Cluster"
    )]
    pub server: Option<String>,

    /// The API server's CA certificate (PEM), embedded as certificate-authority-data
    #[arg(long, value_name = "FILE", help_heading = "Cluster")]
    pub cluster_certificate_authority: Option<PathBuf>,

    /// Name for the cluster, user and context [default: derived from the server]
    #[arg(long, value_name = "NAME", help_heading = "Cluster")]
    pub name: Option<String>,

    /// Merge into $KUBECONFIG (first file) or ~/.kube/config instead of printing
    #[arg(long, help_heading = "Cluster")]
    pub write: bool,

    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GitconfigArgs {
    /// The git server, HOST or HOST:PORT: the helper is configured for https://HOST only
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Git")]
    pub host: String,

    /// How the token is given to git (written to the helper line when not auto)
    #[arg(long, value_enum, help_heading = "Git")]
    pub git_auth: Option<GitAuthArg>,

    /// User name sent with the token in Basic mode (written to the helper line)
    #[arg(long, value_name = "NAME", help_heading = "Git")]
    pub git_username: Option<String>,

    /// Run the commands (git config --global) instead of printing them
    #[arg(long, help_heading = "Git")]
    pub write: bool,

    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The names the binary answers to, by how it was invoked.
pub const GIT_HELPER_NAME: &str = "git-credential-dexcred";
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl-dexcred";

/// Rewrites argv for the names the binary is installed under:
/// `git-credential-dexcred [flags] <action>` (git's calling convention)
/// becomes `dexcred git [flags] <action>`; `kubectl-dexcred …` (kubectl's
/// plugin convention) is `dexcred …`.
/// clap's multi-line usage error as the one line every dexcred failure is:
/// what is wrong, clap's tip if it has one, and where to read more.
pub fn usage_error(e: &clap::Error, command: Option<&std::ffi::OsStr>) -> String {
    use clap::CommandFactory;
    use clap::error::ErrorKind;
    let cli = Cli::command();
    let command = command
        .and_then(|c| c.to_str())
        .filter(|c| cli.find_subcommand(c).is_some());
    let see = match command {
        Some(c) => format!("(see dexcred {c} --help)"),
        None => "(see dexcred --help)".to_string(),
    };
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        return format!("which command? one of {} {see}", names.join(", "));
    }
    let mut line = String::new();
    for part in e.render().to_string().lines().map(str::trim) {
        if part.is_empty() || part.starts_with("Usage:") || part.starts_with("For more information")
        {
            continue;
        }
        match part.strip_prefix("tip: ") {
            Some(tip) => line.push_str(&format!("; {tip}")),
            None if line.is_empty() => line.push_str(part.strip_prefix("error: ").unwrap_or(part)),
            None => line.push_str(&format!(" {part}")),
        }
    }
    format!("{line} {see}")
}

pub fn normalize_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("dexcred")
        .to_string();
    if args.is_empty() {
        args.push(OsString::from("dexcred"));
    }
    if invoked_as == GIT_HELPER_NAME {
        args[0] = OsString::from("dexcred");
        // `helper = dexcred git --pcd …` makes git run
        // `git-credential-dexcred git --pcd … get`: the subcommand is
        // already there.
        if args.get(1).is_none_or(|a| a != "git") {
            args.insert(1, OsString::from("git"));
        }
    } else if invoked_as == KUBECTL_PLUGIN_NAME {
        args[0] = OsString::from("dexcred");
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn git_helper_name_puts_action_last() {
        let args = normalize_args(
            [
                "/usr/bin/git-credential-dexcred",
                "--pcd",
                "https://p",
                "get",
            ]
            .map(OsString::from)
            .to_vec(),
        );
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Git(g) => {
                assert_eq!(g.action, "get");
                assert_eq!(g.provider.pcd.as_deref(), Some("https://p"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn git_helper_name_accepts_an_explicit_git_subcommand() {
        let args = normalize_args(
            [
                "git-credential-dexcred",
                "git",
                "--pcd",
                "https://p",
                "erase",
            ]
            .map(OsString::from)
            .to_vec(),
        );
        match Cli::try_parse_from(args).unwrap().command {
            Command::Git(g) => assert_eq!(g.action, "erase"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kubectl_plugin_name_dispatches_subcommands() {
        let args = normalize_args(["kubectl-dexcred", "status"].map(OsString::from).to_vec());
        assert!(matches!(
            Cli::try_parse_from(args).unwrap().command,
            Command::Status(_)
        ));
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("30"), Ok(30));
        assert_eq!(parse_seconds("2m"), Ok(120));
        assert_eq!(parse_seconds("5s"), Ok(5));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
