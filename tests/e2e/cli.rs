//! The day-one commands, end to end with the real binary: `login`,
//! `status`, `logout`, `completions`, the man page, `--version`, `--help`,
//! usage errors, and the binary's other names as real kubectl and git find
//! them on PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use dexcred_testkit::idp::{FakeIdp, User, decode_payload};
use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// `dexcred <command> <provider args>` with the password in the environment.
fn with_password(env: &Env, command: &str, provider: &[String]) -> Output {
    run(env
        .dexcred([command])
        .args(provider)
        .env("DEXCRED_PASSWORD", ALICE_PASSWORD))
}

fn dexcred(env: &Env, args: &[&str]) -> Output {
    run(&mut env.dexcred(args))
}

/// Every secret a cache entry holds: tokens, refresh token, client secret.
fn secrets_of(entry: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["id_token", "access_token"] {
        if let Some(v) = entry[field]["value"].as_str() {
            out.push(v.to_string());
        }
    }
    for field in ["refresh_token", "client_secret"] {
        if let Some(v) = entry[field].as_str() {
            out.push(v.to_string());
        }
    }
    out
}

/// Fails if `text` contains any of `secrets`, whole or any long piece of a
/// JWT (header, payload or signature on its own).
fn assert_no_secret(text: &str, secrets: &[String]) {
    assert!(!secrets.is_empty(), "no secrets to look for");
    for secret in secrets {
        assert!(secret.len() >= 8, "suspiciously short secret {secret:?}");
        assert!(
            !text.contains(secret.as_str()),
            "a secret leaked into:\n{text}"
        );
        for piece in secret.split('.').filter(|p| p.len() >= 16) {
            assert!(
                !text.contains(piece),
                "part of a token leaked into:\n{text}"
            );
        }
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format time")
}

/// The value after `label` on the line that starts with it (indentation
/// and padding ignored).
fn row<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).expect("write file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "json"));
    files.sort();
    files
}

// ------------------------------------------------------------------ login

#[test]
fn login_shows_subject_email_groups_and_both_expiries() {
    let idp = FakeIdp::pcd();
    let mut alice = User::new(ALICE, ALICE_PASSWORD);
    alice.groups = vec!["developers".into(), "platform-admins".into()];
    idp.add_user(alice);
    let env = Env::new();

    let out = with_password(&env, "login", &pcd_args(&idp));
    let text = ok(&out);

    let entries = env.cache_entries();
    assert_eq!(entries.len(), 1, "one cache entry after login");
    let entry = read_entry(&entries[0]);
    let id_token = entry["id_token"]["value"]
        .as_str()
        .expect("id_token cached");
    let claims = decode_payload(id_token).expect("id_token is a JWT");

    assert_eq!(
        text.lines().next(),
        Some(format!("Logged in to {} as {ALICE}", idp.url()).as_str())
    );
    assert_eq!(row(&text, "subject:"), claims["sub"].as_str().expect("sub"));
    assert_eq!(row(&text, "email:"), ALICE);
    assert_eq!(row(&text, "groups:"), "developers, platform-admins");
    let exp = claims["exp"].as_i64().expect("exp");
    let token = row(&text, "token:");
    // The earlier of exp and expires_in (Dex: 86399 s for a token whose exp
    // is iat + 86400), so exp or the second before it.
    assert!(
        [exp, exp - 1]
            .iter()
            .any(|t| token.starts_with(&format!("id_token valid until {}", rfc3339(*t)))),
        "{token}"
    );
    assert!(token.contains("renewed automatically from"), "{token}");
    // Dex does not disclose the refresh token's lifetime; the line says so
    // rather than inventing a date.
    assert!(
        row(&text, "session:").starts_with("refresh token held"),
        "{text}"
    );
    assert_eq!(row(&text, "cache:"), entries[0].display().to_string());

    let counts = idp.counts();
    assert_eq!(
        (counts.keystone, counts.password_grant),
        (1, 1),
        "{counts:?}"
    );
    let mut secrets = secrets_of(&entry);
    secrets.push(ALICE_PASSWORD.to_string());
    assert_no_secret(&format!("{text}{}", stderr(&out)), &secrets);
}

#[test]
fn login_shows_the_session_expiry_when_the_server_tells_it() {
    // Keycloak sends refresh_expires_in: the session's end is known.
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let text = ok(&with_password(&env, "login", &keycloak_args(&idp)));

    let entry = read_entry(&env.cache_entries()[0]);
    let session_end = entry["refresh_expires_at"]
        .as_i64()
        .expect("refresh expiry cached");
    let access_exp = entry["access_token"]["expires_at"]
        .as_i64()
        .expect("access expiry");
    assert!(
        row(&text, "session:").starts_with(&format!(
            "refresh token valid until {}",
            rfc3339(session_end)
        )),
        "{text}"
    );
    assert!(
        row(&text, "token:")
            .starts_with(&format!("access_token valid until {}", rfc3339(access_exp))),
        "{text}"
    );
    assert_eq!(row(&text, "email:"), ALICE);
    assert_eq!(idp.active_sessions(ALICE), 1);
}

#[test]
fn login_again_renews_with_the_refresh_token_without_a_password() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &pcd_args(&idp)));
    let first = read_entry(&env.cache_entries()[0]);

    // No password anywhere this time.
    let out = run(env.dexcred(["login"]).args(pcd_args(&idp)));
    let text = ok(&out);
    assert!(text.starts_with("Logged in to "), "{text}");

    let counts = idp.counts();
    assert_eq!(counts.password_grant, 1, "{counts:?}");
    assert_eq!(counts.refresh_grant, 1, "{counts:?}");
    let second = read_entry(&env.cache_entries()[0]);
    assert_ne!(
        first["refresh_token"], second["refresh_token"],
        "the rotated refresh token is saved"
    );
}

#[test]
fn login_without_a_password_in_a_non_interactive_run_exits_3_without_a_request() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let out = run(env
        .dexcred(["login"])
        .args(pcd_args(&idp))
        .env("CI", "true"));
    let line = fails_with(&out, 3);
    assert!(line.contains("DEXCRED_PASSWORD"), "{line}");
    assert_eq!(idp.counts().total, 0, "nothing was sent");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn login_with_a_wrong_password_exits_3_and_caches_nothing() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    let wrong = "not the password at all";
    let out = run(env
        .dexcred(["login"])
        .args(pcd_args(&idp))
        .env("DEXCRED_PASSWORD", wrong));
    let line = fails_with(&out, 3);
    assert!(line.contains("rejected the password"), "{line}");
    assert!(!line.contains(wrong));
    assert!(env.cache_entries().is_empty());
}

// ----------------------------------------------------------------- status

#[test]
fn status_lists_every_entry_as_a_table_and_as_json_without_secrets() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &pcd_args(&idp)));
    ok(&with_password(&env, "login", &keycloak_args(&idp)));
    let entries = env.cache_entries();
    assert_eq!(entries.len(), 2);

    let mut secrets = vec![ALICE_PASSWORD.to_string()];
    for path in &entries {
        secrets.extend(secrets_of(&read_entry(path)));
    }
    assert!(
        secrets.len() >= 7,
        "tokens, refresh tokens and the PCD client secret: {}",
        secrets.len()
    );

    let table = ok(&dexcred(&env, &["status"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "header and two rows:\n{table}");
    for column in [
        "PROVIDER",
        "URL",
        "USER",
        "EXPIRES IN",
        "REFRESH",
        "RENEWED",
        "FILE",
    ] {
        assert!(lines[0].contains(column), "{column} in {}", lines[0]);
    }
    let pcd_row = lines
        .iter()
        .find(|l| l.starts_with("pcd "))
        .unwrap_or_else(|| panic!("no pcd row:\n{table}"));
    assert!(pcd_row.contains(&format!(" {} ", idp.url())), "{pcd_row}");
    assert!(
        pcd_row.contains(ALICE) && pcd_row.contains(" yes "),
        "{pcd_row}"
    );
    for path in &entries {
        assert!(table.contains(&path.display().to_string()), "{table}");
    }
    assert_no_secret(&table, &secrets);

    let json_text = ok(&dexcred(&env, &["status", "--json"]));
    assert_no_secret(&json_text, &secrets);
    let rows: Vec<Value> = serde_json::from_str(&json_text).expect("status --json is JSON");
    assert_eq!(rows.len(), 2);
    let pcd = rows
        .iter()
        .find(|r| r["provider"] == "pcd")
        .expect("pcd row");
    assert_eq!(pcd["url"], idp.url());
    assert_eq!(pcd["user"], ALICE);
    assert_eq!(pcd["refresh_token"], true);
    let pcd_entry = read_entry(Path::new(pcd["file"].as_str().expect("file")));
    assert_eq!(
        pcd["id_token_expires_at"],
        rfc3339(
            pcd_entry["id_token"]["expires_at"]
                .as_i64()
                .expect("expiry")
        )
    );
    assert!(pcd["renewed_at"].is_string() && pcd["logged_in_at"].is_string());
    let keycloak = rows
        .iter()
        .find(|r| r["provider"] == "token_url")
        .expect("keycloak row");
    assert!(
        keycloak["refresh_token_expires_at"].is_string(),
        "{keycloak}"
    );
}

#[test]
fn status_shows_unreadable_entries_as_such_and_still_lists_the_others() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &pcd_args(&idp)));
    let good = env.cache_entries()[0].clone();
    let dir = env.cache_dir();
    let secrets = secrets_of(&read_entry(&good));

    // Damaged: not JSON at all.
    let garbage = dir.join("00000000000000000000000000000000.json");
    write_private(&garbage, b"{ this is not json", 0o600);
    // Exposed: a real entry that other users could read.
    let exposed = dir.join("ffffffffffffffffffffffffffffffff.json");
    write_private(&exposed, &std::fs::read(&good).expect("read entry"), 0o644);

    let table = ok(&dexcred(&env, &["status"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let garbage_row = lines
        .iter()
        .find(|l| l.contains(&garbage.display().to_string()))
        .expect("row for the damaged file");
    assert!(garbage_row.starts_with("unreadable "), "{garbage_row}");
    assert!(garbage_row.contains("is not valid JSON"), "{garbage_row}");
    let exposed_row = lines
        .iter()
        .find(|l| l.contains(&exposed.display().to_string()))
        .expect("row for the exposed file");
    assert!(exposed_row.starts_with("unreadable "), "{exposed_row}");
    assert!(
        exposed_row.contains("accessible to other users"),
        "{exposed_row}"
    );
    assert!(lines.iter().any(|l| l.starts_with("pcd ")), "{table}");
    assert_no_secret(&table, &secrets);

    let json_text = ok(&dexcred(&env, &["status", "--json"]));
    assert_no_secret(&json_text, &secrets);
    let rows: Vec<Value> = serde_json::from_str(&json_text).expect("JSON");
    let errors: Vec<&str> = rows.iter().filter_map(|r| r["error"].as_str()).collect();
    assert_eq!(errors.len(), 2, "{json_text}");
    assert_eq!(rows.iter().filter(|r| r["provider"] == "pcd").count(), 1);
}

#[test]
fn status_without_a_cache_says_where_it_looked() {
    let env = Env::new();
    let text = ok(&dexcred(&env, &["status"]));
    assert_eq!(
        text,
        format!("No cache entries in {}.\n", env.cache_dir().display())
    );
    assert_eq!(ok(&dexcred(&env, &["status", "--json"])).trim(), "[]");
}

// ----------------------------------------------------------------- logout

#[test]
fn logout_deletes_the_entry_and_says_what_the_server_did() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &pcd_args(&idp)));
    assert_eq!(env.cache_entries().len(), 1);

    let text = ok(&run(env.dexcred(["logout"]).args(pcd_args(&idp))));
    // Dex has no logout endpoint: say so, and delete locally anyway.
    assert!(text.contains("Not logged out at the server"), "{text}");
    assert!(
        text.contains(&format!(
            "Deleted the cached tokens for {ALICE} at {}.",
            idp.url()
        )),
        "{text}"
    );
    assert!(env.cache_entries().is_empty(), "entry deleted");
    assert!(ok(&dexcred(&env, &["status"])).starts_with("No cache entries"));

    let again = ok(&run(env.dexcred(["logout"]).args(pcd_args(&idp))));
    assert!(again.contains("No cached tokens for"), "{again}");
}

#[test]
fn logout_ends_a_keycloak_session_at_the_server() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &keycloak_args(&idp)));
    assert_eq!(idp.active_sessions(ALICE), 1);

    let text = ok(&run(env.dexcred(["logout"]).args(keycloak_args(&idp))));
    assert!(text.contains("Logged out: ended the session"), "{text}");
    assert_eq!(idp.counts().logout, 1);
    assert_eq!(idp.active_sessions(ALICE), 0, "session ended at the server");
    assert!(env.cache_entries().is_empty());
}

#[test]
fn logout_all_deletes_every_entry_including_unreadable_ones() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    ok(&with_password(&env, "login", &pcd_args(&idp)));
    ok(&with_password(&env, "login", &keycloak_args(&idp)));
    let garbage = env
        .cache_dir()
        .join("0123456789abcdef0123456789abcdef.json");
    write_private(&garbage, b"\x00\x01 damaged", 0o600);
    assert_eq!(json_files(&env.cache_dir()).len(), 3);

    let text = ok(&dexcred(&env, &["logout", "--all"]));
    assert!(text.contains("Deleted an unreadable cache entry"), "{text}");
    assert_eq!(
        text.matches("Deleted the cached tokens for").count(),
        2,
        "{text}"
    );
    assert!(
        json_files(&env.cache_dir()).is_empty(),
        "every entry deleted"
    );
    assert_eq!(
        idp.active_sessions(ALICE),
        0,
        "the Keycloak session ended too"
    );

    let empty = ok(&dexcred(&env, &["logout", "--all"]));
    assert!(empty.starts_with("No cached tokens in "), "{empty}");
}

// ------------------------------------------ completions, man, help, version

const SUBCOMMANDS: [&str; 10] = [
    "kubectl",
    "git",
    "token",
    "login",
    "logout",
    "status",
    "kubeconfig",
    "gitconfig",
    "completions",
    "man",
];

#[test]
fn completions_generate_for_each_shell_and_bash_completes() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&dexcred(&env, &["completions", shell]));
        for command in SUBCOMMANDS {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
        for flag in ["pcd", "password-file", "json", "all"] {
            let written = match shell {
                "fish" => format!("-l {flag}"),
                _ => format!("--{flag}"),
            };
            assert!(
                script.contains(&written),
                "{shell} completions lack --{flag}"
            );
        }
        match shell {
            "zsh" => assert!(script.starts_with("#compdef dexcred"), "{shell}"),
            "fish" => assert!(script.contains("complete -c dexcred "), "{shell}"),
            _ => {}
        }
    }

    let script = env.path().join("dexcred.bash");
    std::fs::write(&script, ok(&dexcred(&env, &["completions", "bash"]))).expect("write");
    let parsed = run(Command::new("bash").arg("-n").arg(&script));
    assert!(parsed.status.success(), "bash -n: {}", stderr(&parsed));

    // Load it as bash-completion would and ask for completions.
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len() - 1;
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
             COMP_POINT=${{#COMP_LINE}}; _dexcred dexcred '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            quoted.join(" "),
            words[cword],
            words[cword - 1],
        );
        let out = run(Command::new("bash").arg("-c").arg(program));
        ok(&out).lines().map(str::to_string).collect()
    };
    assert_eq!(complete(&["dexcred", "sta"]), ["status"]);
    assert_eq!(complete(&["dexcred", "status", "--j"]), ["--json"]);
    assert_eq!(complete(&["dexcred", "completions", "z"]), ["zsh"]);
    assert!(complete(&["dexcred", "token", "--pass"]).contains(&"--password-file".to_string()));
}

/// Long flags in `dexcred <command> --help`.
fn flags_in_help(env: &Env, command: &str) -> Vec<String> {
    let help = ok(&dexcred(env, &[command, "--help"]));
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .split('=')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|w| w.len() > 2 && w != "--help" && w != "--version")
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn man_page_is_roff_and_documents_every_command_and_flag() {
    let env = Env::new();
    let page = ok(&dexcred(&env, &["man"]));
    assert!(page.is_ascii(), "roff input must be ASCII");
    assert!(
        page.lines().any(|l| l.starts_with(".TH dexcred 1 ")),
        "no .TH line"
    );
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "\"COMMON OPTIONS\"",
        "\"PROVIDER OPTIONS\"",
        "ENVIRONMENT",
        "FILES",
        "\"EXIT STATUS\"",
        "EXAMPLES",
        "VERSION",
    ] {
        assert!(
            page.contains(&format!("\n.SH {section}\n")),
            "no {section} section"
        );
    }
    // Every line is text or a request of the man macro package.
    const REQUESTS: [&str; 14] = [
        "TH", "SH", "SS", "TP", "PP", "RS", "RE", "IP", "nf", "fi", "ie", "el", "br", "sp",
    ];
    for line in page.lines() {
        if let Some(request) = line.strip_prefix('.') {
            let name = request.split_whitespace().next().unwrap_or("");
            assert!(REQUESTS.contains(&name), "unexpected roff request: {line}");
        }
        assert!(
            !line.starts_with('\''),
            "unescaped quote at line start: {line}"
        );
    }
    for command in SUBCOMMANDS {
        assert!(
            page.contains(&format!(".SS \"dexcred {command}\"")),
            "{command} is not documented"
        );
        for flag in flags_in_help(&env, command) {
            assert!(
                page.contains(&flag.replace('-', "\\-")),
                "{flag} of {command} is not in the man page"
            );
        }
    }
    assert!(
        page.contains("\\fBDEXCRED_PCD\\fR"),
        "environment variables listed"
    );
    assert!(
        !page.contains("dexcred\\-help"),
        "no references to pages that do not exist"
    );
}

#[test]
fn version_names_the_git_commit_under_every_name() {
    let env = Env::new();
    let head = run(Command::new(git_new())
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    let head = ok(&head).trim().to_string();
    assert_eq!(head.len(), 12, "{head}");

    let version = ok(&dexcred(&env, &["--version"]));
    assert_eq!(
        version,
        format!("dexcred {} (commit {head})\n", env!("CARGO_PKG_VERSION"))
    );
    for name in ["git-credential-dexcred", "kubectl-dexcred"] {
        let mut cmd = Command::new(env.bin_dir().join(name));
        env.apply(&mut cmd);
        let out = ok(&run(cmd.arg("--version")));
        assert!(out.contains(&format!("(commit {head})")), "{name}: {out}");
    }
}

#[test]
fn help_has_examples_for_kubectl_git_and_scripts() {
    let env = Env::new();
    for flag in ["--help", "-h"] {
        let help = ok(&dexcred(&env, &[flag]));
        assert!(help.contains("Examples:"), "{help}");
        assert!(
            help.contains("dexcred kubectl --pcd https://"),
            "kubectl example"
        );
        assert!(
            help.contains("git config --global credential.https://git.example.com.helper"),
            "git example"
        );
        assert!(
            help.contains("dexcred token --format curl"),
            "script example"
        );
        assert!(help.contains("| curl -K - https://"), "script example");
        assert!(!help.contains("curl -H"), "no token in curl's argv");
        assert!(help.contains("Exit codes: 0 ok, 2 usage"), "exit codes");
    }
}

#[test]
fn every_command_help_describes_that_command() {
    // `dexcred --help` lists each command with a one-line summary; its own
    // --help must open with the same summary (not a shared struct's text).
    let env = Env::new();
    let help = ok(&dexcred(&env, &["--help"]));
    let listed: Vec<(String, String)> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let l = l.trim();
            let (name, summary) = l.split_once(char::is_whitespace)?;
            Some((name.to_string(), summary.trim().to_string()))
        })
        .filter(|(name, _)| name != "help")
        .collect();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, SUBCOMMANDS, "{help}");
    for (name, summary) in &listed {
        let own = ok(&dexcred(&env, &[name, "--help"]));
        assert_eq!(
            own.lines().next(),
            Some(summary.as_str()),
            "dexcred {name} --help"
        );
    }
}

#[test]
fn usage_errors_exit_2_with_nothing_on_stdout() {
    let env = Env::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["status", "--bogus"],
        &["completions"],
        &["completions", "tcsh"],
        &[
            "token",
            "--pcd",
            "https://pcd.example.com",
            "--username",
            "a",
            "--timeout",
            "0",
        ],
    ] {
        let out = dexcred(&env, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "dexcred {args:?}: {}",
            stderr(&out)
        );
        // clap's usage errors too: one `dexcred:` line naming the help.
        let line = fails_with(&out, 2);
        assert!(line.ends_with("--help)"), "dexcred {args:?}: {line}");
    }
    let line = fails_with(&dexcred(&env, &["status", "--bogus"]), 2);
    assert_eq!(
        line,
        "dexcred: unexpected argument '--bogus' found (see dexcred status --help)"
    );
    // Errors dexcred finds itself: the one-line form.
    let line = fails_with(&dexcred(&env, &["token"]), 2);
    assert!(line.contains("--pcd"), "{line}");
    let line = fails_with(
        &dexcred(
            &env,
            &[
                "kubectl",
                "--pcd",
                "http://pcd.example.com",
                "--username",
                "a",
            ],
        ),
        2,
    );
    assert!(line.contains("http"), "{line}");
}

// ------------------------------------------ the other names, via kubectl and git

#[test]
fn kubectl_finds_the_plugin_for_status_login_and_logout() {
    let idp = FakeIdp::pcd();
    let env = Env::new();
    for version in ["dispatcher", "1.27"] {
        let kubectl = |args: &[&str]| -> Output {
            let mut cmd = Command::new(crate::common::kubectl(version));
            env.apply(&mut cmd);
            cmd.arg("dexcred").args(args);
            run(&mut cmd)
        };
        let plugins = ok(&kubectl(&["--version"]));
        assert!(plugins.starts_with("dexcred "), "{plugins}");

        let empty = ok(&kubectl(&["status"]));
        assert_eq!(empty, ok(&dexcred(&env, &["status"])));

        let mut login_args = vec!["login"];
        let provider = pcd_args(&idp);
        login_args.extend(provider.iter().map(String::as_str));
        let mut cmd = Command::new(crate::common::kubectl(version));
        env.apply(&mut cmd);
        cmd.arg("dexcred")
            .args(&login_args)
            .env("DEXCRED_PASSWORD", ALICE_PASSWORD);
        let text = ok(&run(&mut cmd));
        assert!(
            text.starts_with(&format!("Logged in to {} as {ALICE}", idp.url())),
            "{text}"
        );

        let status = ok(&kubectl(&["status"]));
        assert!(status.lines().any(|l| l.starts_with("pcd ")), "{status}");

        let mut logout_args = vec!["logout"];
        logout_args.extend(provider.iter().map(String::as_str));
        ok(&kubectl(&logout_args));
        assert!(env.cache_entries().is_empty(), "kubectl {version}");
    }
    assert_eq!(idp.counts().password_grant, 2);

    let mut cmd = Command::new(crate::common::kubectl("1.33"));
    env.apply(&mut cmd);
    let list = ok(&run(cmd.args(["plugin", "list"])));
    assert!(
        list.contains(&env.bin_dir().join("kubectl-dexcred").display().to_string()),
        "{list}"
    );
}

/// Every option's help names its variable, never an (empty or secret)
/// value: `[env: DEXCRED_PCD]`, not `[env: DEXCRED_PCD=]`.
#[test]
fn help_names_environment_variables_without_values() {
    let env = Env::new();
    let mut cmd = env.dexcred(["kubectl", "--help"]);
    let help = ok(&run(cmd.env("DEXCRED_USERNAME", "alice-from-env")));
    assert!(help.contains("[env: DEXCRED_PCD]"), "{help}");
    assert!(
        !help.contains("=]") && !help.contains("alice-from-env"),
        "{help}"
    );
}

/// A source install (`cargo install --path .`) installs these two programs
/// next to dexcred; each runs that dexcred under its own name.
#[test]
fn source_install_programs_run_the_dexcred_next_to_them() {
    let env = Env::new();
    let helper = env!("CARGO_BIN_EXE_git-credential-dexcred");
    let mut cmd = Command::new(helper);
    env.apply(&mut cmd);
    assert_eq!(
        ok(&run(cmd.arg("capability"))),
        "version 0\ncapability authtype\n"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dexcred"));
    env.apply(&mut cmd);
    let line = fails_with(&run(cmd.args(["status", "--bogus"])), 2);
    assert!(line.contains("(see dexcred status --help)"), "{line}");

    // Without a dexcred next to it: one line, exit 5.
    let alone = env.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(helper, alone.join("git-credential-dexcred")).unwrap();
    let mut cmd = Command::new(alone.join("git-credential-dexcred"));
    env.apply(&mut cmd);
    let line = fails_with(&run(cmd.arg("capability")), 5);
    assert!(line.contains("reinstall dexcred"), "{line}");
}

#[test]
fn git_finds_the_credential_helper_by_its_name() {
    let env = Env::new();
    for git in [git_new(), git_old()] {
        let mut cmd = Command::new(&git);
        env.apply(&mut cmd);
        let out = ok(&run(cmd.args(["credential-dexcred", "capability"])));
        assert_eq!(out, "version 0\ncapability authtype\n", "{}", git.display());
    }
}

// ------------------------------------------------- in-process, scripted

/// Runs `dexcred <command>` for alice at `idp`'s PCD inside this test
/// process (`dexcred::run`), with `vars` as its whole environment and
/// `answers` for its prompts.
fn run_in_process(
    env: &Env,
    vars: &[(&str, &str)],
    answers: &[&str],
    command: &str,
    idp: &FakeIdp,
) -> (i32, String, dexcred::prompt::Scripted) {
    use dexcred::commands::Runtime;
    use dexcred::environment::Environment;
    use dexcred::prompt::Scripted;
    let prompter = Scripted::new(answers.iter().copied());
    let rt = Runtime::scripted(
        Environment::from_vars(vars.iter().copied()),
        std::rc::Rc::new(prompter.clone()),
    );
    let mut argv: Vec<std::ffi::OsString> = vec!["dexcred".into(), command.into()];
    argv.extend(pcd_args(idp).into_iter().map(Into::into));
    argv.push("--cache-dir".into());
    argv.push(env.cache_dir().into());
    let code = dexcred::run(argv, &rt);
    (code, rt.stdout(), prompter)
}

#[test]
fn an_in_process_login_asks_the_prompter_for_the_password_once() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    let (code, out, prompter) = run_in_process(&env, &[], &[ALICE_PASSWORD], "login", &idp);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        prompter.asked(),
        [format!("Password for {ALICE} at {}: ", idp.url())]
    );
    assert!(
        out.starts_with(&format!("Logged in to {} as ", idp.url())),
        "{out}"
    );
    assert_eq!(idp.counts().password_grant, 1);

    // The token it saved is what `token` hands out next, without a prompt.
    let (code, out, prompter) = run_in_process(&env, &[], &[], "token", &idp);
    assert_eq!(code, 0);
    let saved = entry_token(&env.only_entry(), "id_token").expect("id_token saved");
    assert_eq!(out, format!("{saved}\n"));
    assert!(prompter.asked().is_empty());
    assert_eq!(idp.counts().password_grant, 1);
}

#[test]
fn an_in_process_run_reads_only_the_environment_it_is_given() {
    let env = Env::new();
    let idp = FakeIdp::pcd();
    // The password from the given environment: no prompt.
    let vars = [("DEXCRED_PASSWORD", ALICE_PASSWORD)];
    let (code, _, prompter) = run_in_process(&env, &vars, &[], "login", &idp);
    assert_eq!(code, 0);
    assert!(prompter.asked().is_empty());
    // Without it, in a fresh cache, the prompter is asked; a wrong answer
    // is an authentication failure (exit 3) with nothing on stdout.
    let (code, out, prompter) = run_in_process(&Env::new(), &[], &["wrong"], "login", &idp);
    assert_eq!((code, out.as_str()), (3, ""));
    assert_eq!(prompter.asked().len(), 1);
}
