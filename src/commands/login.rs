//! `dexcred login`: renew now (refresh token first, then the password,
//! prompting at a terminal), then show who you are and until when.

use crate::cache::Entry;
use crate::cli::LoginArgs;
use crate::config::Config;
use crate::error::{Result, escape_for_terminal};
use crate::jwt;
use crate::prompt::Terminal;
use crate::protocol::kubectl::rfc3339;
use crate::provider::now_secs;
use crate::session::{self, Issued};

use super::Runtime;

pub fn run(args: &LoginArgs, rt: &Runtime) -> Result<()> {
    let mut config = Config::from_args(&args.provider, &args.common, &rt.env)?;
    config.force_refresh = true;
    let credentials = config.credentials(rt.prompter(Terminal::when_stdin_is_a_terminal));
    let issued = session::get_token(&config, &credentials)?;
    let path = config.store.entry_path(&config.key);
    rt.write_stdout(&summary(
        &config,
        &issued,
        &path.display().to_string(),
        now_secs(),
    )?)
}

/// The human summary: identity claims from the id_token (or the handed-out
/// token when there is none), and both expiries.
fn summary(config: &Config, issued: &Issued, path: &str, now: i64) -> Result<String> {
    let entry: &Entry = &issued.entry;
    let claims = entry
        .id_token
        .as_ref()
        .and_then(|t| jwt::decode(t.value.expose()))
        .or_else(|| jwt::decode(issued.token.value.expose()))
        .unwrap_or_default();
    let who = claims
        .email
        .clone()
        .or(claims.preferred_username.clone())
        .or(config.key.username.clone())
        // A browser or device login names no user up front; the id_token's
        // subject is who logged in.
        .or(claims
            .sub
            .clone()
            .filter(|_| config.key.username.is_none() && entry.id_token.is_some()))
        .unwrap_or_else(|| config.key.client_id.clone());
    // Claims are the server's text: escaped, so control characters in them
    // cannot move the cursor or fake lines on the user's terminal.
    let mut out = format!(
        "Logged in to {} as {}\n",
        escape_for_terminal(&config.key.url),
        escape_for_terminal(&who)
    );
    let mut row = |label: &str, value: String| {
        out.push_str(&format!("  {label:<9}{}\n", escape_for_terminal(&value)));
    };
    if let Some(sub) = &claims.sub {
        row("subject:", sub.clone());
    }
    if let Some(email) = &claims.email {
        row("email:", email.clone());
    }
    if let Some(name) = &claims.name {
        row("name:", name.clone());
    }
    if !claims.groups.is_empty() {
        row("groups:", claims.groups.join(", "));
    }
    row(
        "token:",
        format!(
            "{} valid until {} ({} left); renewed automatically from {}",
            config.field.name(),
            rfc3339(issued.token.expires_at)?,
            duration(issued.token.expires_at - now),
            rfc3339(issued.expires_at)?
        ),
    );
    let session = match (&entry.refresh_token, entry.refresh_expires_at) {
        (Some(_), Some(at)) => format!(
            "refresh token valid until {} ({})",
            rfc3339(at)?,
            duration(at - now)
        ),
        (Some(_), None) => {
            "refresh token held; the server sets its lifetime (not disclosed)".to_string()
        }
        (None, _) if config.key.exchange.is_some() => {
            "no refresh token: renewal exchanges a fresh subject token".to_string()
        }
        (None, _) => "no refresh token: renewal logs in again".to_string(),
    };
    row("session:", session);
    row("cache:", path.to_string());
    Ok(out)
}

/// `1d2h`, `3h4m`, `5m6s`, `7s`; negative durations read `expired`.
pub fn duration(secs: i64) -> String {
    if secs <= 0 {
        return "expired".to_string();
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(-1), "expired");
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(306), "5m6s");
        assert_eq!(duration(3 * 3600 + 240), "3h4m");
        assert_eq!(duration(86_400 + 7200), "1d2h");
    }
}
