//! `dexcred token`: the token for scripts, from the same cache.

use crate::cli::{TokenArgs, TokenFormat};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::protocol::kubectl::rfc3339;
use crate::session;

pub fn run(args: &TokenArgs) -> Result<()> {
    let config = Config::from_args(&args.provider, &args.common)?;
    let credentials = config.credentials(super::stdin_is_interactive);
    let issued = session::get_token(&config, &credentials)?;
    let token = issued.token.value.expose();
    let out = match args.format {
        TokenFormat::Raw => format!("{token}\n"),
        TokenFormat::Header => format!("Authorization: Bearer {token}\n"),
        TokenFormat::Json => {
            let doc = serde_json::json!({
                "token": token,
                "token_type": "Bearer",
                "token_field": config.field.name(),
                "expiry": rfc3339(issued.expires_at)?,
                "expiry_unix": issued.expires_at,
            });
            let mut text = serde_json::to_string(&doc)
                .map_err(|e| Error::local(format!("cannot encode JSON: {e}")))?;
            text.push('\n');
            text
        }
    };
    super::write_stdout(&out)
}
