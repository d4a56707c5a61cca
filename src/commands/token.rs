//! `dexcred token`: the token for scripts, from the same cache — or a
//! personal access token, which needs no identity provider and no cache.

use crate::cache::TokenField;
use crate::cli::{TokenArgs, TokenFormat};
use crate::config::{Config, given};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::header;
use crate::prompt::{Prompter, Terminal};
use crate::protocol::kubectl::rfc3339;
use crate::secret::{Secret, Sources};
use crate::session;

use super::Runtime;

/// The variable that holds a personal access token itself.
pub const ENV_PAT: &str = "DEXCRED_PAT";

pub fn run(args: &TokenArgs, rt: &Runtime) -> Result<()> {
    // Before anything else: a bad name must not cost a login.
    let header_name = given(&args.header_name);
    if let Some(name) = header_name {
        header::validate_name(name)?;
    }
    let prompter = rt.prompter(Terminal::when_stdin_is_a_terminal);
    if let Some(pat) = pat_sources(args, &rt.env)? {
        let pat = read_pat(&pat, args, prompter.as_ref())?;
        return rt.write_stdout(&render_pat(args.format, header_name, &pat)?);
    }
    let config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    let credentials = config.credentials(prompter);
    let issued = session::get_token(&config, &credentials)?;
    let out = render(
        args.format,
        header_name,
        config.field,
        issued.token.value.expose(),
        issued.expires_at,
    )?;
    rt.write_stdout(&out)
}

/// The output of `dexcred token` in `format`.
pub fn render(
    format: TokenFormat,
    header_name: Option<&str>,
    field: TokenField,
    token: &str,
    expires_at: i64,
) -> Result<String> {
    Ok(match format {
        TokenFormat::Raw => format!("{token}\n"),
        TokenFormat::Header => format!("{}\n", header::line(header_name, token)),
        TokenFormat::Curl => header::curl_config(&header::line(header_name, token)),
        TokenFormat::Json => {
            let doc = serde_json::json!({
                "token": token,
                "token_type": "Bearer",
                "token_field": field.name(),
                "expiry": rfc3339(expires_at)?,
                "expiry_unix": expires_at,
            });
            json_line(&doc)?
        }
    })
}

/// Where a personal access token comes from, when this run hands one out:
/// `--pat`, `--pat-file`, `--pat-command` or `DEXCRED_PAT`. A PAT needs no
/// identity provider, so naming one as well is a mistake worth reporting.
fn pat_sources(args: &TokenArgs, env: &Environment) -> Result<Option<Sources>> {
    let sources = Sources {
        what: "personal access token",
        env: env.non_empty(ENV_PAT).map(|v| (ENV_PAT, Secret::new(v))),
        file: args.pat_file.clone().filter(|p| !p.as_os_str().is_empty()),
        command: given(&args.pat_command).map(str::to_string),
    };
    if !args.pat && !sources.configured() {
        return Ok(None);
    }
    let p = &args.provider;
    if [&p.pcd, &p.issuer, &p.token_url]
        .iter()
        .any(|v| given(v).is_some())
    {
        return Err(Error::usage(
            "a personal access token needs no identity provider: drop --pcd/--issuer/--token-url \
             (and DEXCRED_PCD/_ISSUER/_TOKEN_URL), or drop the PAT source",
        ));
    }
    Ok(Some(sources))
}

/// The PAT from its source, else a no-echo prompt at a terminal. It is
/// never cached: the server that issued it is its only store.
fn read_pat(sources: &Sources, args: &TokenArgs, prompter: &dyn Prompter) -> Result<Secret> {
    let timeout = std::time::Duration::from_secs(args.provider.timeout);
    let interactive = prompter.available();
    let pat = match sources.read(timeout, interactive)? {
        Some(pat) => pat,
        None if interactive => prompter.secret(
            "Personal access token: ",
            std::time::Duration::from_secs(args.provider.login_timeout),
        )?,
        None => {
            return Err(Error::auth(format!(
                "no personal access token in this non-interactive run; set {ENV_PAT}, \
                 --pat-file or --pat-command"
            )));
        }
    };
    let pat = Secret::new(pat.expose().trim());
    header::check_value("personal access token", pat.expose())?;
    Ok(pat)
}

fn render_pat(format: TokenFormat, header_name: Option<&str>, pat: &Secret) -> Result<String> {
    let pat = pat.expose();
    Ok(match format {
        TokenFormat::Raw => format!("{pat}\n"),
        TokenFormat::Header => format!("{}\n", header::line(header_name, pat)),
        TokenFormat::Curl => header::curl_config(&header::line(header_name, pat)),
        TokenFormat::Json => json_line(&serde_json::json!({
            "token": pat,
            "token_type": "personal_access_token",
            "header": header_name.unwrap_or("Authorization"),
        }))?,
    })
}

fn json_line(doc: &serde_json::Value) -> Result<String> {
    let mut text =
        serde_json::to_string(doc).map_err(|e| Error::local(format!("cannot encode JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}
