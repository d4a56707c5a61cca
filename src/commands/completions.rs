//! Shell completions and the man page, generated from the clap definitions
//! so they can never drift from the real flags.

use std::io::Write;

use clap::{Args, Command, CommandFactory};

use crate::cli::{Cli, CommonArgs, ProviderArgs, Shell};
use crate::config::{ENV_CLIENT_SECRET, ENV_OTP, ENV_PASSWORD};
use crate::error::{Error, Result};

use super::Runtime;

pub fn run(shell: Shell, rt: &Runtime) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut command, "dexcred", &mut out);
    rt.write_stdout(&String::from_utf8_lossy(&out))
}

pub fn man(rt: &Runtime) -> Result<()> {
    let page = man_page().map_err(|e| Error::local(format!("cannot render the man page: {e}")))?;
    rt.write_stdout(&page)
}

/// dexcred(1): one page with every command and every flag. clap_mangen
/// renders the pieces; the page is assembled here because its default
/// layout lists only the top-level flags and points to one page per
/// subcommand, which nobody installs.
fn man_page() -> std::io::Result<String> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let page = clap_mangen::Man::new(cli.clone());
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;

    // The flags every command shares (`CommonArgs`) and those of every
    // command that talks to an identity provider (`ProviderArgs`) are
    // described once, after the commands.
    let common = bare(CommonArgs::augment_args);
    let provider = bare(ProviderArgs::augment_args);
    let shared: Vec<String> = common
        .get_arguments()
        .chain(provider.get_arguments())
        .map(|a| a.get_id().to_string())
        .collect();
    let commands: Vec<&Command> = cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();

    out.extend_from_slice(b".SH COMMANDS\n");
    for command in &commands {
        command_section(&mut out, command, &shared)?;
    }

    let with_provider: Vec<&str> = commands
        .iter()
        .filter(|c| c.get_arguments().any(|a| a.get_id() == "pcd"))
        .map(|c| c.get_name())
        .collect();
    out.extend_from_slice(b".SH \"COMMON OPTIONS\"\nAccepted by every command.\n");
    out.extend_from_slice(&options_without_heading(&common)?);
    writeln!(
        out,
        ".SH \"PROVIDER OPTIONS\"\nAccepted by {}: which identity provider to use, which account, \
         and how to reach it.",
        escape(&with_provider.join(", "))
    )?;
    out.extend_from_slice(&demoted_options(&provider)?);

    out.extend_from_slice(static_sections().as_bytes());
    // Every flag's environment variable, from the same definitions.
    let mut seen: Vec<String> = Vec::new();
    for arg in commands.iter().flat_map(|c| c.get_arguments()) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let env = env.to_string_lossy().into_owned();
        if !seen.contains(&env) {
            writeln!(
                out,
                ".TP\n\\fB{}\\fR\nSame as \\fB\\-\\-{}\\fR.",
                escape(&env),
                escape(long)
            )?;
            seen.push(env);
        }
    }
    out.extend_from_slice(FILES_AND_EXIT_STATUS.as_bytes());
    if let Some(examples) = cli.get_after_help() {
        out.extend_from_slice(b".SH EXAMPLES\n.nf\n");
        for line in examples
            .to_string()
            .lines()
            .skip_while(|l| l.trim() == "Examples:")
        {
            writeln!(out, "{}", escape(line))?;
        }
        out.extend_from_slice(b".fi\n");
    }
    page.render_version_section(&mut out)?;
    // roff input is ASCII: anything else becomes a named Unicode escape.
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => c.to_string(),
            c => format!("\\[u{:04X}]", u32::from(c)),
        })
        .collect())
}

/// A command holding only the arguments `augment` adds, without the
/// automatic --help and --version.
fn bare(augment: fn(Command) -> Command) -> Command {
    let mut command = augment(
        Command::new("dexcred")
            .disable_help_flag(true)
            .disable_version_flag(true),
    );
    command.build();
    command
}

/// `.SS "dexcred <name>"`: usage, description and the command's own flags.
fn command_section(out: &mut Vec<u8>, command: &Command, shared: &[String]) -> std::io::Result<()> {
    let name = format!("dexcred {}", command.get_name());
    writeln!(out, ".SS \"{name}\"")?;
    let usage = command.clone().render_usage().to_string();
    let usage = usage.trim().trim_start_matches("Usage:").trim();
    writeln!(out, "\\fB{}\\fR", escape(usage))?;
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        out.extend_from_slice(b".PP\n");
        for line in about.to_string().lines() {
            writeln!(out, "{}", escape(line))?;
        }
    }
    let own: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|a| {
            let id = a.get_id().as_str();
            !a.is_hide_set() && id != "help" && id != "version" && !shared.iter().any(|s| s == id)
        })
        .map(|a| a.clone().help_heading(None))
        .collect();
    if !own.is_empty() {
        let mut only_own = Command::new("dexcred")
            .disable_help_flag(true)
            .disable_version_flag(true)
            .args(own);
        only_own.build();
        out.extend_from_slice(&options_without_heading(&only_own)?);
    }
    let takes = |id: &str| command.get_arguments().any(|a| a.get_id() == id);
    let also = match (takes("pcd"), takes("cache_dir")) {
        (true, _) => Some("Also accepts the COMMON OPTIONS and the PROVIDER OPTIONS below."),
        (false, true) => Some("Also accepts the COMMON OPTIONS below."),
        (false, false) => None,
    };
    if let Some(also) = also {
        writeln!(out, ".PP\n{also}")?;
    }
    Ok(())
}

/// clap_mangen's OPTIONS section without its `.SH OPTIONS` line, for
/// flags that carry no help heading.
fn options_without_heading(command: &Command) -> std::io::Result<Vec<u8>> {
    let mut rendered = Vec::new();
    clap_mangen::Man::new(command.clone()).render_options_section(&mut rendered)?;
    let text = String::from_utf8_lossy(&rendered);
    let kept: String = text
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(kept.into_bytes())
}

/// clap_mangen's OPTIONS section with each help heading as a subsection.
fn demoted_options(command: &Command) -> std::io::Result<Vec<u8>> {
    let mut rendered = Vec::new();
    clap_mangen::Man::new(command.clone()).render_options_section(&mut rendered)?;
    let text = String::from_utf8_lossy(&rendered);
    let demoted: String = text
        .lines()
        .map(|l| match l.strip_prefix(".SH ") {
            Some(heading) => format!(".SS {heading}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    Ok(demoted.into_bytes())
}

fn static_sections() -> String {
    format!(
        r#".SH ENVIRONMENT
.TP
\fB{ENV_PASSWORD}\fR
The password for a password login (wins over \fB\-\-password\-file\fR and \fB\-\-password\-command\fR). There is deliberately no flag that takes the password itself: command lines are visible to every user of the machine.
.TP
\fB{ENV_OTP}\fR
The one\-time code, for servers that ask for one (wins over \fB\-\-otp\-command\fR).
.TP
\fB{ENV_CLIENT_SECRET}\fR
The OAuth client secret (wins over \fB\-\-client\-secret\-file\fR).
.TP
\fBDEXCRED_SUBJECT_TOKEN\fR
The subject token for \fB\-\-grant token_exchange\fR (e.g. a GitLab \fBid_tokens:\fR variable); read at every exchange, never cached.
.TP
\fBDEXCRED_PAT\fR
A personal access token for \fBdexcred token\fR (wins over \fB\-\-pat\-file\fR and \fB\-\-pat\-command\fR); never cached.
.TP
\fBACTIONS_ID_TOKEN_REQUEST_URL\fR, \fBACTIONS_ID_TOKEN_REQUEST_TOKEN\fR
Set by GitHub Actions in jobs with \fBpermissions: id\-token: write\fR; used by \fB\-\-subject\-token\-source github\-actions\fR.
.TP
\fBCI\fR
When set (and not \fB0\fR or \fBfalse\fR), \fBlogin\fR, \fBtoken\fR and the git helper never prompt; \fBkubectl\fR follows kubectl's own \fBinteractiveMode\fR.
.TP
\fBGIT_TERMINAL_PROMPT\fR
\fB0\fR stops the git credential helper from prompting.
.TP
\fBXDG_CACHE_HOME\fR
The cache lives in \fB$XDG_CACHE_HOME/dexcred\fR when set.
.PP
Every flag can also be set in the environment (a flag on the command line wins):
"#
    )
}

const FILES_AND_EXIT_STATUS: &str = r#".SH FILES
.TP
\fB~/.cache/dexcred/\fR
The token cache (mode 0700): one \fIid\fR\fB.json\fR entry (0600) per identity, replaced atomically, and one \fIid\fR\fB.lock\fR file that serialises renewals. \fBdexcred status\fR lists the entries; \fBdexcred logout \-\-all\fR deletes them.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB2\fR
Usage: the command line or environment is wrong.
.TP
\fB3\fR
Authentication refused, or a login is needed and this run cannot prompt.
.TP
\fB4\fR
The identity provider is unreachable or answered with something unusable.
.TP
\fB5\fR
A local problem: the cache directory, a lock, a password file or command.
.PP
On failure dexcred prints exactly one line, starting with \fBdexcred: \fR, on standard error, and nothing on standard output.
"#;

/// Escapes text for a roff text line.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_page_documents_every_command_and_flag() {
        let page = man_page().unwrap();
        assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
        for command in Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
        {
            assert!(
                page.contains(&format!(".SS \"dexcred {}\"", command.get_name())),
                "{}",
                command.get_name()
            );
        }
        for flag in [
            "pcd",
            "password\\-file",
            "cache\\-dir",
            "git\\-auth",
            "json",
            "all",
        ] {
            assert!(page.contains(&format!("\\-\\-{flag}")), "--{flag}");
        }
        assert!(
            !page.contains("dexcred\\-help"),
            "no pages that do not exist"
        );
    }

    #[test]
    fn escape_protects_control_characters() {
        assert_eq!(escape(".x"), "\\&.x");
        assert_eq!(escape("a\\b-c"), "a\\eb\\-c");
    }
}
