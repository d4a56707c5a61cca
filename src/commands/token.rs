//! `dexcred token`: the token for scripts, from the same cache.

use crate::cache::TokenField;
use crate::cli::{TokenArgs, TokenFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::kubectl::rfc3339;
use crate::session;

pub fn run(args: &TokenArgs) -> Result<()> {
    let config = Config::from_args(&args.provider, &args.common)?;
    let credentials = config.credentials(super::stdin_is_interactive);
    let issued = session::get_token(&config, &credentials)?;
    let out = render(
        args.format,
        config.field,
        issued.token.value.expose(),
        issued.expires_at,
    )?;
    super::write_stdout(&out)
}

/// The output of `dexcred token` in `format`.
pub fn render(
    format: TokenFormat,
    field: TokenField,
    token: &str,
    expires_at: i64,
) -> Result<String> {
    Ok(match format {
        TokenFormat::Raw => format!("{token}\n"),
        TokenFormat::Header => format!("Authorization: Bearer {token}\n"),
        TokenFormat::Json => {
            let doc = serde_json::json!({
                "token": token,
                "token_type": "Bearer",
                "token_field": field.name(),
                "expiry": rfc3339(expires_at)?,
                "expiry_unix": expires_at,
            });
            let mut text = serde_json::to_string(&doc)
                .map_err(|e| Error::local(format!("cannot encode JSON: {e}")))?;
            text.push('\n');
            text
        }
    })
}
