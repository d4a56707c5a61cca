//! `dexcred kubeconfig`: print or merge a kubeconfig for a PCD-K cluster.
//!
//! The user entry runs `dexcred kubectl` with the same identity flags this
//! command was given, so kubectl gets tokens from the same cache entry that
//! `dexcred login` fills. Only flags that differ from their defaults are
//! copied, and never a secret value: secrets stay in the environment, in
//! files or behind commands, which are referenced by name.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use clap::ValueEnum;

use crate::cli::{
    ClientAuthArg, CommonArgs, DEFAULT_LOCK_TIMEOUT, DEFAULT_LOGIN_TIMEOUT, DEFAULT_TIMEOUT,
    DEFAULT_USER_DOMAIN, KubeconfigArgs, ProviderArgs,
};
use crate::config::{Config, given};
use crate::error::{Error, Result};
use crate::kubeconfig::{self, Exec, Kubeconfig};

use super::Runtime;

/// The executable kubectl runs, found on PATH: an absolute path would break
/// when the kubeconfig is shared or dexcred is reinstalled elsewhere.
pub const COMMAND: &str = "dexcred";

/// The command to write into the exec entry: `kubectl-dexcred` when this
/// run was `kubectl dexcred kubeconfig …` (krew installs only that name, and
/// it answers `kubectl-dexcred kubectl …` like `dexcred kubectl …`), else
/// `dexcred`.
fn exec_command() -> &'static str {
    let invoked = std::env::args_os().next();
    let name = invoked
        .as_deref()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str());
    if name == Some(crate::cli::KUBECTL_PLUGIN_NAME) {
        crate::cli::KUBECTL_PLUGIN_NAME
    } else {
        COMMAND
    }
}

/// What kubectl prints when `dexcred` is not on PATH.
pub const INSTALL_HINT: &str = "\
dexcred gets the tokens for this cluster but was not found on your PATH.
Install it (cargo install dexcred, or a release binary or package), make sure
`dexcred` is on PATH, and run kubectl again. See the dexcred README, Installation.";

/// Largest cluster CA file we embed; a CA bundle is a few kilobytes.
const MAX_CA_BYTES: u64 = 1024 * 1024;

pub fn run(args: &KubeconfigArgs, rt: &Runtime) -> Result<()> {
    // The same validation as `dexcred kubectl`: a kubeconfig is never
    // written for flags that would fail when kubectl runs them.
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    let kc = build(args, &config)?;
    if !args.write {
        return rt.write_stdout(&kubeconfig::document(&kc));
    }
    let path = kubeconfig::target_path(rt.env.var_os("KUBECONFIG"), rt.env.home_dir())?;
    let written = kubeconfig::write(&path, &kc)?;
    let previous = match &written.previous_context {
        Some(p) if *p != kc.name => format!(" (was {p:?})"),
        _ => String::new(),
    };
    let verb = if written.created {
        "created"
    } else {
        "updated"
    };
    let _ = writeln!(
        std::io::stderr(),
        "dexcred: {verb} {} with cluster, user and context {:?}; current context is now {:?}{previous}",
        written.path.display(),
        kc.name,
        kc.name
    );
    Ok(())
}

/// Everything the kubeconfig holds, from the flags.
pub fn build(args: &KubeconfigArgs, config: &Config) -> Result<Kubeconfig> {
    let server = server_url(args, config)?;
    let name = match &args.name {
        Some(name) => checked_name(name)?,
        None => default_name(args, config, &server),
    };
    let certificate_authority_data = match &args.cluster_certificate_authority {
        Some(path) => Some(read_cluster_ca(path)?),
        None => None,
    };
    Ok(Kubeconfig {
        name,
        server,
        certificate_authority_data,
        exec: Exec {
            command: exec_command().to_string(),
            args: exec_args(&args.provider, &args.common, config)?,
            install_hint: INSTALL_HINT.to_string(),
        },
    })
}

/// The API server: `--server`, else the PCD-K OIDC proxy
/// `{pcd}/oidc-proxy/{tenant}/{region}`. kubectl runs exec plugins only for
/// https servers, so nothing else is accepted.
pub fn server_url(args: &KubeconfigArgs, config: &Config) -> Result<String> {
    if let Some(server) = given(&args.server) {
        let url = crate::url::validate_base_url("--server", server)?;
        return require_https("--server", url);
    }
    let (tenant, region) = match (given(&args.tenant), given(&args.region)) {
        (Some(t), Some(r)) => (t, r),
        (t, r) => {
            let missing = match (t, r) {
                (None, None) => "--tenant and --region",
                (None, _) => "--tenant",
                _ => "--region",
            };
            return Err(Error::usage(format!(
                "which cluster? pass {missing} (the server is {{pcd}}/oidc-proxy/TENANT/REGION), or --server https://..."
            )));
        }
    };
    if config.key.provider != crate::cache::ProviderKind::Pcd {
        return Err(Error::usage(
            "--tenant/--region derive the server from --pcd; with --issuer or --token-url pass --server https://...",
        ));
    }
    let url = format!(
        "{}/oidc-proxy/{}/{}",
        config.key.url,
        path_segment(tenant),
        path_segment(region)
    );
    require_https("the server derived from --pcd", url)
}

fn require_https(what: &str, url: String) -> Result<String> {
    if url.starts_with("https://") {
        Ok(url)
    } else {
        Err(Error::usage(format!(
            "{what} {url:?} is not https; kubectl runs credential plugins only for https servers (pass --server https://...)"
        )))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a
/// tenant or region name cannot change the shape of the URL.
fn path_segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `--name` as given: any text kubectl accepts, but not empty and not
/// control characters (it is shown in prompts and `kubectl config` output).
fn checked_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::usage(
            "--name must be a non-empty name without control characters",
        ));
    }
    Ok(name.to_string())
}

/// `pcd-<host>-<tenant>-<region>` for a derived server (without the
/// prefix when the host already starts with `pcd`), else the server's
/// host, port and path (`api.example.com-6443`), sanitized.
pub fn default_name(args: &KubeconfigArgs, config: &Config, server: &str) -> String {
    match (
        given(&args.server),
        given(&args.tenant),
        given(&args.region),
    ) {
        (None, Some(tenant), Some(region)) => {
            let host = url_parts(&config.key.url)
                .first()
                .cloned()
                .unwrap_or_default();
            // `pcd-r1.example.com` needs no second `pcd-`.
            let prefix = if host.starts_with("pcd") { "" } else { "pcd-" };
            sanitize_name(&format!("{prefix}{host}-{tenant}-{region}"))
        }
        _ => sanitize_name(&url_parts(server).join("-")),
    }
}

/// Host, explicit port and path segments of a URL.
fn url_parts(url: &str) -> Vec<String> {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return Vec::new();
    };
    let mut parts: Vec<String> = uri.host().map(str::to_string).into_iter().collect();
    parts.extend(uri.port_u16().map(|p| p.to_string()));
    parts.extend(
        uri.path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    parts
}

/// Lowercase `[a-z0-9.-]`, other characters as `-`, no repeated or edge
/// `-`/`.`: safe in any tool that uses the name as a file or label.
pub fn sanitize_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_matches(['-', '.']);
    if out.is_empty() {
        "dexcred".to_string()
    } else {
        out.to_string()
    }
}

/// The API server's CA as certificate-authority-data. The file is checked
/// to hold a PEM certificate, so a wrong file fails here and not later as
/// a TLS error in kubectl.
fn read_cluster_ca(path: &Path) -> Result<String> {
    let shown = path.display();
    let pem = crate::fs::read_regular_file(path, MAX_CA_BYTES).map_err(|why| {
        Error::local(format!(
            "cannot read --cluster-certificate-authority {shown}: {why}"
        ))
    })?;
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") || !text.contains("-----END CERTIFICATE-----")
    {
        return Err(Error::usage(format!(
            "--cluster-certificate-authority {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(STANDARD.encode(&pem))
}

/// The exec arguments that make `dexcred kubectl` use the same identity
/// and settings as this invocation: provider flags that were given and
/// differ from their defaults, file paths made absolute (kubectl runs the
/// plugin from any directory). Secret values are never among them.
pub fn exec_args(p: &ProviderArgs, common: &CommonArgs, config: &Config) -> Result<Vec<String>> {
    let mut args = Args(vec!["kubectl".to_string()]);
    args.value(config.provider_flag(), &config.key.url);
    args.option("--logout-url", given(&p.logout_url));
    args.option("--revocation-url", given(&p.revocation_url));
    args.option("--username", given(&p.username));
    if p.user_domain != DEFAULT_USER_DOMAIN {
        args.value("--user-domain", &p.user_domain);
    }
    args.option("--project", given(&p.project));
    args.path("--password-file", p.password_file.as_deref())?;
    args.option("--password-command", given(&p.password_command));
    args.option("--otp-command", given(&p.otp_command));
    args.option("--client-id", given(&p.client_id));
    args.path("--client-secret-file", p.client_secret_file.as_deref())?;
    if p.client_auth != ClientAuthArg::Post {
        args.option("--client-auth", value_name(p.client_auth).as_deref());
    }
    args.option("--connector-id", given(&p.connector_id));
    args.option("--scope", given(&p.scope));
    args.option("--grant", p.grant.and_then(value_name).as_deref());
    for param in p
        .extra_params
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        args.value("--extra-param", param);
    }
    args.option(
        "--token-field",
        p.token_field.and_then(value_name).as_deref(),
    );
    exchange_args(&mut args, &p.exchange)?;
    args.path(
        "--certificate-authority",
        p.certificate_authority.as_deref(),
    )?;
    if p.insecure_skip_tls_verify {
        args.0.push("--insecure-skip-tls-verify".to_string());
    }
    if p.timeout != DEFAULT_TIMEOUT {
        args.value("--timeout", &p.timeout.to_string());
    }
    if p.lock_timeout != DEFAULT_LOCK_TIMEOUT {
        args.value("--lock-timeout", &p.lock_timeout.to_string());
    }
    // Browser and device logins: kubectl runs the plugin with the user's
    // terminal (interactiveMode IfAvailable), so it can log in itself.
    for address in p
        .listen_addresses
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        args.value("--listen-address", address);
    }
    args.option("--browser-command", given(&p.browser_command));
    if p.login_timeout != DEFAULT_LOGIN_TIMEOUT {
        args.value("--login-timeout", &p.login_timeout.to_string());
    }
    args.path("--cache-dir", common.cache_dir.as_deref())?;
    Ok(args.0)
}

/// The token-exchange flags. The subject token itself is never among
/// them: DEXCRED_SUBJECT_TOKEN stays in the environment kubectl passes on.
fn exchange_args(args: &mut Args, x: &crate::cli::ExchangeArgs) -> Result<()> {
    args.path("--subject-token-file", x.subject_token_file.as_deref())?;
    args.option(
        "--subject-token-source",
        x.subject_token_source.and_then(value_name).as_deref(),
    );
    args.option(
        "--subject-token-type",
        x.subject_token_type.and_then(value_name).as_deref(),
    );
    args.option(
        "--requested-token-type",
        x.requested_token_type.and_then(value_name).as_deref(),
    );
    args.option("--audience", given(&x.audience));
    Ok(())
}

/// How a `--flag` value is spelled on the command line (clap's own name).
fn value_name(value: impl ValueEnum) -> Option<String> {
    value.to_possible_value().map(|v| v.get_name().to_string())
}

/// The growing argument list.
struct Args(Vec<String>);

impl Args {
    /// `--flag value`, or `--flag=value` when the value starts with `-` and
    /// would otherwise be taken for a flag.
    fn value(&mut self, flag: &str, value: &str) {
        if value.starts_with('-') {
            self.0.push(format!("{flag}={value}"));
        } else {
            self.0.push(flag.to_string());
            self.0.push(value.to_string());
        }
    }

    fn option(&mut self, flag: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.value(flag, v);
        }
    }

    /// A file or directory flag, as an absolute path.
    fn path(&mut self, flag: &str, value: Option<&Path>) -> Result<()> {
        let Some(path) = value.filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(());
        };
        let absolute = std::path::absolute(path).map_err(|e| {
            Error::local(format!(
                "cannot make {flag} {} absolute: {e}",
                path.display()
            ))
        })?;
        let text = absolute.to_str().ok_or_else(|| {
            Error::usage(format!(
                "{flag} {} is not valid UTF-8 and cannot be written to a kubeconfig",
                absolute.display()
            ))
        })?;
        self.value(flag, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::environment::Environment;
    use clap::{CommandFactory, Parser};

    fn parse(extra: &[&str]) -> KubeconfigArgs {
        let mut argv = vec!["dexcred", "kubeconfig", "--cache-dir", "/tmp/dexcred-kc"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Kubeconfig(k)) => k,
            other => panic!("{other:?}"),
        }
    }

    fn built(extra: &[&str]) -> Result<Kubeconfig> {
        let args = parse(extra);
        let config = Config::from_args(&args.provider, &args.common, &Environment::default())?;
        build(&args, &config)
    }

    const PCD: [&str; 8] = [
        "--pcd",
        "https://pcd.example.com/",
        "--username",
        "alice@example.com",
        "--tenant",
        "service",
        "--region",
        "RegionOne",
    ];

    #[test]
    fn defaults_match_the_clap_definitions() {
        let mut cmd = Cli::command();
        cmd.build();
        let sub = cmd.find_subcommand("kubeconfig").unwrap();
        let default = |id: &str| {
            let arg = sub.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_default_values()[0].to_str().unwrap().to_string()
        };
        assert_eq!(default("user_domain"), DEFAULT_USER_DOMAIN);
        assert_eq!(default("timeout"), DEFAULT_TIMEOUT.to_string());
        assert_eq!(default("lock_timeout"), DEFAULT_LOCK_TIMEOUT.to_string());
        assert_eq!(default("login_timeout"), DEFAULT_LOGIN_TIMEOUT.to_string());
        assert_eq!(default("client_auth"), "post");
    }

    #[test]
    fn pcd_server_and_name_are_derived() {
        let kc = built(&PCD).unwrap();
        assert_eq!(
            kc.server,
            "https://pcd.example.com/oidc-proxy/service/RegionOne"
        );
        assert_eq!(kc.name, "pcd.example.com-service-regionone");
        assert_eq!(
            kc.exec.args,
            [
                "kubectl",
                "--pcd",
                "https://pcd.example.com",
                "--username",
                "alice@example.com",
                "--cache-dir",
                "/tmp/dexcred-kc"
            ]
        );
    }

    #[test]
    fn other_hosts_get_a_pcd_prefix() {
        let mut argv = PCD.to_vec();
        argv[1] = "https://cloud.example.com";
        assert_eq!(
            built(&argv).unwrap().name,
            "pcd-cloud.example.com-service-regionone"
        );
    }

    #[test]
    fn server_flag_overrides_and_names_the_entry() {
        let mut argv = PCD.to_vec();
        argv.extend(["--server", "https://api.example.com:6443/"]);
        let kc = built(&argv).unwrap();
        assert_eq!(kc.server, "https://api.example.com:6443");
        assert_eq!(kc.name, "api.example.com-6443");
        let kc = built(&[&argv[..], &["--name", "prod"]].concat()).unwrap();
        assert_eq!(kc.name, "prod");
    }

    #[test]
    fn browser_and_device_logins_keep_their_flags() {
        let kc = built(&[
            "--issuer",
            "https://idp.example.com",
            "--client-id",
            "kube",
            "--grant",
            "authorization_code",
            "--listen-address",
            "127.0.0.1:8000",
            "--listen-address",
            "127.0.0.1:18000",
            "--browser-command",
            "firefox --new-window",
            "--login-timeout",
            "120",
            "--server",
            "https://api.example.com",
        ])
        .unwrap();
        assert_eq!(
            kc.exec.args,
            [
                "kubectl",
                "--issuer",
                "https://idp.example.com",
                "--client-id",
                "kube",
                "--grant",
                "authorization_code",
                "--listen-address",
                "127.0.0.1:8000",
                "--listen-address",
                "127.0.0.1:18000",
                "--browser-command",
                "firefox --new-window",
                "--login-timeout",
                "120",
                "--cache-dir",
                "/tmp/dexcred-kc"
            ]
        );
        let doc = kubeconfig::document(&kc);
        assert!(
            doc.contains("interactiveMode: \"IfAvailable\"")
                || doc.contains("interactiveMode: IfAvailable"),
            "{doc}"
        );
    }

    #[test]
    fn server_needs_tenant_and_region_or_https() {
        let e = built(&PCD[..6]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message().contains("--region"), "{e}");
        let e = built(&[&PCD[..], &["--server", "http://api.example.com"]].concat()).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let e = built(&[
            "--pcd",
            "http://127.0.0.1:5000",
            "--username",
            "a",
            "--tenant",
            "t",
            "--region",
            "r",
        ])
        .unwrap_err();
        assert!(e.message().contains("https"), "{e}");
        let e = built(&[
            "--issuer",
            "https://kc.example/realms/x",
            "--client-id",
            "k",
            "--tenant",
            "t",
            "--region",
            "r",
        ])
        .unwrap_err();
        assert!(e.message().contains("--server"), "{e}");
    }

    #[test]
    fn tenant_and_region_are_escaped() {
        let kc = built(&[
            "--pcd",
            "https://pcd.example.com",
            "--username",
            "a",
            "--tenant",
            "my tenant/x",
            "--region",
            "r?1",
        ])
        .unwrap();
        assert_eq!(
            kc.server,
            "https://pcd.example.com/oidc-proxy/my%20tenant%2Fx/r%3F1"
        );
        assert_eq!(kc.name, "pcd.example.com-my-tenant-x-r-1");
    }

    #[test]
    fn non_default_flags_are_copied_with_absolute_paths() {
        let kc = built(&[
            "--issuer",
            "https://kc.example/realms/x/",
            "--client-id",
            "cli",
            "--username",
            "bob",
            "--grant",
            "password",
            "--client-auth",
            "basic",
            "--scope",
            "openid email",
            "--extra-param",
            "audience=api",
            "--token-field",
            "id_token",
            "--password-file",
            "relative/pw",
            "--certificate-authority",
            "/etc/ca.pem",
            "--insecure-skip-tls-verify",
            "--timeout",
            "2m",
            "--lock-timeout",
            "60",
            "--otp-command=-otp",
            "--server",
            "https://api.example.com",
        ])
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        let pw = cwd.join("relative/pw").display().to_string();
        let expected: Vec<String> = [
            "kubectl",
            "--issuer",
            "https://kc.example/realms/x",
            "--username",
            "bob",
            "--password-file",
            &pw,
            "--otp-command=-otp",
            "--client-id",
            "cli",
            "--client-auth",
            "basic",
            "--scope",
            "openid email",
            "--grant",
            "password",
            "--extra-param",
            "audience=api",
            "--token-field",
            "id_token",
            "--certificate-authority",
            "/etc/ca.pem",
            "--insecure-skip-tls-verify",
            "--timeout",
            "120",
            "--cache-dir",
            "/tmp/dexcred-kc",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(kc.exec.args, expected);
    }

    #[test]
    fn exec_args_parse_back_to_the_same_identity() {
        let args = parse(&[
            "--pcd",
            "https://pcd.example.com",
            "--username",
            "alice",
            "--user-domain",
            "corp",
            "--project",
            "p1",
            "--connector-id",
            "ldap",
            "--tenant",
            "t",
            "--region",
            "r",
        ]);
        let config =
            Config::from_args(&args.provider, &args.common, &Environment::default()).unwrap();
        let exec = exec_args(&args.provider, &args.common, &config).unwrap();
        let argv: Vec<&str> = ["dexcred"]
            .into_iter()
            .chain(exec.iter().map(String::as_str))
            .collect();
        let Ok(Command::Kubectl(k)) = Cli::try_parse_from(argv).map(|c| c.command) else {
            panic!("exec args do not parse as `dexcred kubectl`");
        };
        let again = Config::from_args(&k.provider, &k.common, &Environment::default()).unwrap();
        assert_eq!(again.key, config.key);
    }

    #[test]
    fn cluster_ca_must_be_pem() {
        let dir = std::env::temp_dir().join(format!("dexcred-kc-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        std::fs::write(&good, pem).unwrap();
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        assert_eq!(read_cluster_ca(&good).unwrap(), STANDARD.encode(pem));
        assert_eq!(read_cluster_ca(&bad).unwrap_err().exit_code(), 2);
        assert_eq!(
            read_cluster_ca(&dir.join("missing"))
                .unwrap_err()
                .exit_code(),
            5
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(
            sanitize_name("PCD_R1.Example.com:443"),
            "pcd-r1.example.com-443"
        );
        assert_eq!(sanitize_name("--a//b--"), "a-b");
        assert_eq!(sanitize_name("ÄÖ"), "dexcred");
        assert!(checked_name(" ").is_err());
        assert!(checked_name("a\nb").is_err());
        assert_eq!(checked_name(" My Cluster ").unwrap(), "My Cluster");
    }
}
