//! `dexcred status [--json]`: every cache entry, without a single secret.

use serde::Serialize;

use crate::cache::{Entry, Store, StoredToken};
use crate::cli::StatusArgs;
use crate::commands::login::duration;
use crate::error::{Error, Result, escape_for_terminal};
use crate::protocol::kubectl::rfc3339;
use crate::provider::now_secs;

use super::Runtime;

/// One row; every field is safe to show (no token, refresh token or secret
/// is ever copied into it).
#[derive(Debug, Serialize)]
struct Row {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<crate::cache::ProviderKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token_expires_at: Option<String>,
    refresh_token: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logged_in_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renewed_at: Option<String>,
    rejected: bool,
    #[serde(skip)]
    expires_in: String,
}

pub fn run(args: &StatusArgs, rt: &Runtime) -> Result<()> {
    let store = Store::at(args.common.cache_dir.as_deref(), &rt.env)?;
    let now = now_secs();
    let rows: Vec<Row> = store
        .list()?
        .into_iter()
        .map(|(path, parsed)| {
            let file = path.display().to_string();
            match parsed {
                Ok(entry) => row(file, &entry, now),
                Err(reason) => error_row(file, reason),
            }
        })
        .collect();
    let out = if args.json {
        let mut text = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::local(format!("cannot encode JSON: {e}")))?;
        text.push('\n');
        text
    } else {
        table(&rows, &store)
    };
    rt.write_stdout(&out)
}

fn time(at: i64) -> Option<String> {
    rfc3339(at).ok()
}

fn row(file: String, entry: &Entry, now: i64) -> Row {
    let key = &entry.key;
    // The token this entry hands out by default: the id_token for PCD,
    // else whichever one exists.
    let main: Option<&StoredToken> = if key.provider == crate::cache::ProviderKind::Pcd {
        entry.id_token.as_ref()
    } else {
        entry.access_token.as_ref().or(entry.id_token.as_ref())
    };
    let expires_in = match main {
        Some(_) if entry.rejected => "rejected".to_string(),
        Some(t) => duration(t.expires_at - now),
        None => "-".to_string(),
    };
    Row {
        file,
        error: None,
        provider: Some(key.provider),
        url: Some(key.url.clone()),
        user: key
            .username
            .clone()
            .or_else(|| key.exchange.as_ref().map(|x| x.subject.clone())),
        client_id: Some(key.client_id.clone()),
        id_token_expires_at: entry.id_token.as_ref().and_then(|t| time(t.expires_at)),
        access_token_expires_at: entry.access_token.as_ref().and_then(|t| time(t.expires_at)),
        refresh_token: entry.refresh_token.is_some(),
        refresh_token_expires_at: entry.refresh_expires_at.and_then(time),
        logged_in_at: time(entry.logged_in_at),
        renewed_at: time(entry.renewed_at),
        rejected: entry.rejected,
        expires_in,
    }
}

fn error_row(file: String, reason: String) -> Row {
    Row {
        file,
        error: Some(reason),
        provider: None,
        url: None,
        user: None,
        client_id: None,
        id_token_expires_at: None,
        access_token_expires_at: None,
        refresh_token: false,
        refresh_token_expires_at: None,
        logged_in_at: None,
        renewed_at: None,
        rejected: false,
        expires_in: "-".to_string(),
    }
}

fn table(rows: &[Row], store: &Store) -> String {
    if rows.is_empty() {
        return format!("No cache entries in {}.\n", store.dir().display());
    }
    let header = [
        "PROVIDER",
        "URL",
        "USER",
        "EXPIRES IN",
        "REFRESH",
        "RENEWED",
        "FILE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let dash = || "-".to_string();
            // Entries hold text a server or a hostile file supplied: escape
            // it so it cannot drive the terminal.
            [
                r.provider
                    .map_or_else(|| "unreadable".to_string(), |p| p.as_str().to_string()),
                r.url.clone().or(r.error.clone()).unwrap_or_else(dash),
                r.user.clone().or(r.client_id.clone()).unwrap_or_else(dash),
                r.expires_in.clone(),
                if r.refresh_token { "yes" } else { "no" }.to_string(),
                r.renewed_at.clone().unwrap_or_else(dash),
                r.file.clone(),
            ]
            .map(|cell| escape_for_terminal(&cell))
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let text: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_string));
    for row in &cells {
        line(row);
    }
    out
}
