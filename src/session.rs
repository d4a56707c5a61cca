//! The use case every front end shares: "give me a valid token for this
//! identity", plus the two other things done to a session (reject a token
//! a server refused; log out).
//!
//! The life of one request:
//!
//! 1. **Hit path** — read the entry without a lock; if its token is outside
//!    the refresh margin, return it. No network, no lock, no provider.
//! 2. **Lock** the entry, then **re-read** it: another process may have
//!    renewed it while we waited, in which case we return its token. This
//!    is what makes N simultaneous cold starts cost one request.
//! 3. **Refresh** with the refresh token. On success the entry (with the
//!    rotated refresh token) is saved before anything else happens.
//! 4. If the server rejected the refresh, **log in** again (password,
//!    client credentials, or a browser/device login), when a password can
//!    be had or a person is there to log in.
//! 5. If renewal failed but the old token has not actually expired yet (it
//!    is only inside its margin), serve it with a warning rather than fail.
//!
//! The cache is written only with complete new results; a failed renewal
//! leaves the entry exactly as it was.

use crate::cache::{Entry, EntryLock, Loaded, StoredToken};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::provider::{self, Context, Credentials, Logout, Provider, RefreshError, now_secs};
use crate::secret::{Secret, fingerprint};

/// A token ready to hand out.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: StoredToken,
    /// The entry it came from (for `login`'s summary).
    pub entry: Entry,
    /// The expiry to advertise: the start of the refresh margin normally;
    /// the real expiry when a stale token is served.
    pub expires_at: i64,
}

impl Issued {
    fn fresh(entry: Entry, token: StoredToken) -> Issued {
        Issued {
            expires_at: token.renew_at(),
            token,
            entry,
        }
    }
}

/// Returns a valid token, renewing it if needed.
pub fn get_token(config: &Config, credentials: &Credentials) -> Result<Issued> {
    let log = config.log;
    let now = now_secs();
    // What the unlocked read saw: with --force-refresh, a token different
    // from this one after the lock means another process renewed meanwhile.
    let mut seen: Option<Secret> = None;
    if let Loaded::Hit(entry) = config.store.load(&config.key)? {
        if !config.force_refresh
            && let Some(token) = entry.fresh_token(config.field, now)
        {
            let token = token.clone();
            log.debug(|| {
                format!(
                    "cache hit: {} {} valid for {}s more",
                    config.field.name(),
                    fingerprint(token.value.expose()),
                    token.renew_at() - now
                )
            });
            return Ok(Issued::fresh(*entry, token));
        }
        seen = entry.token(config.field).map(|t| t.value.clone());
    }

    log.debug(|| "renewal needed; locking the cache entry".to_string());
    // Interim, until the separate login lock lands: a login that needs a
    // person holds this lock for up to --login-timeout, so its waiters wait
    // that long on top of --lock-timeout instead of failing by the dozen.
    let wait = match config.provider() {
        Ok(p) if p.login_needs_person(credentials) => config.login_timeout + config.lock_timeout,
        _ => config.lock_timeout,
    };
    let lock = config.store.lock(&config.key, wait)?;
    let current = reload(config)?;
    if let Some(entry) = &current {
        let renewed_meanwhile = entry.token(config.field).map(|t| &t.value) != seen.as_ref();
        if (!config.force_refresh || renewed_meanwhile)
            && let Some(token) = entry.fresh_token(config.field, now_secs())
        {
            log.debug(|| "another process renewed the entry while we waited".to_string());
            return Ok(Issued::fresh(entry.clone(), token.clone()));
        }
    }
    renew(config, credentials, &lock, current)
}

/// Reads the entry under the lock, warning about (and then ignoring) one that
/// cannot be used.
fn reload(config: &Config) -> Result<Option<Entry>> {
    Ok(match config.store.load(&config.key)? {
        Loaded::Hit(entry) => Some(*entry),
        Loaded::Missing => None,
        Loaded::Discarded(reason) => {
            config.log.warn(&format!(
                "ignoring the cache entry: {reason}; it will be replaced"
            ));
            None
        }
    })
}

fn renew(
    config: &Config,
    credentials: &Credentials,
    lock: &EntryLock,
    current: Option<Entry>,
) -> Result<Issued> {
    let log = config.log;
    let provider = config.provider()?;
    let now = now_secs();
    let mut working = current
        .clone()
        .unwrap_or_else(|| Entry::new(config.key.clone(), now));
    let refresh_token = working
        .refresh_token
        .clone()
        .filter(|_| provider.uses_refresh_tokens() && working.has_usable_refresh_token(now));
    // Without a refresh token, a login that cannot get a password fails
    // here, before any certificate store is loaded or request made.
    if refresh_token.is_none()
        && let Some(error) = cannot_log_in(config, provider.as_ref(), credentials)
    {
        return serve_stale_or_fail(config, current.as_ref(), error);
    }
    let http = Http::new(&config.tls, config.timeout, log)?;
    let ctx = Context {
        http: &http,
        log,
        credentials,
        now,
    };

    if let Some(refresh_token) = refresh_token {
        log.debug(|| {
            format!(
                "refreshing with refresh token {}",
                refresh_token.fingerprint()
            )
        });
        match provider.refresh(&ctx, &mut working, &refresh_token) {
            Ok(grant) => {
                // A response without the token we hand out must not make
                // the previous (expired) one look renewed; but a rotated
                // refresh token in it is saved all the same.
                let lacks_field = grant.token(config.field).is_none();
                let rotated = grant
                    .refresh_token
                    .as_ref()
                    .is_some_and(|t| Some(t) != working.refresh_token.as_ref());
                if !lacks_field || rotated {
                    provider::apply_grant(&mut working, grant, now_secs(), false);
                    config.store.save(lock, &working)?;
                    log.debug(|| "refreshed; new tokens saved".to_string());
                }
                if lacks_field {
                    return serve_stale_or_fail(config, current.as_ref(), no_token_error(config));
                }
                return issue(config, working);
            }
            Err(RefreshError::Unavailable(error)) => {
                return serve_stale_or_fail(config, current.as_ref(), error);
            }
            Err(RefreshError::Rejected(reason)) => {
                log.debug(|| format!("the refresh token was refused ({reason}); logging in again"));
            }
        }
    }

    if let Some(error) = cannot_log_in(config, provider.as_ref(), credentials) {
        return serve_stale_or_fail(config, current.as_ref(), error);
    }
    login(config, &ctx, provider.as_ref(), lock, &working)
        .or_else(|error| serve_stale_or_fail(config, current.as_ref(), error))
}

/// Why a login cannot happen in this run: the provider needs a password
/// and there is no way to get one, or a person (browser, device code) and
/// nobody is there — decided before a browser starts or a request is sent.
fn cannot_log_in(
    config: &Config,
    provider: &dyn Provider,
    credentials: &Credentials,
) -> Option<Error> {
    if provider.login_needs_password() {
        credentials.password_unavailable()
    } else if provider.login_needs_person(credentials) && !crate::login::person_present(credentials)
    {
        Some(crate::login::nobody_there(
            &config.account,
            &config.login_command(),
        ))
    } else {
        None
    }
}

fn login(
    config: &Config,
    ctx: &Context<'_>,
    provider: &dyn Provider,
    lock: &EntryLock,
    working: &Entry,
) -> Result<Issued> {
    // A fresh entry, keeping only what belongs to the provider rather than
    // the session (PCD's client secret, discovered endpoints).
    let mut fresh = Entry::new(config.key.clone(), ctx.now);
    fresh.client_secret = working.client_secret.clone();
    fresh.endpoints = working.endpoints.clone();
    config
        .log
        .debug(|| format!("logging in as {}", config.account));
    let grant = provider.login(ctx, &mut fresh)?;
    provider::apply_grant(&mut fresh, grant, now_secs(), true);
    config.store.save(lock, &fresh)?;
    config.log.debug(|| "logged in; tokens saved".to_string());
    issue(config, fresh)
}

/// Picks the configured token out of a freshly saved entry.
fn issue(config: &Config, entry: Entry) -> Result<Issued> {
    match entry.token(config.field) {
        Some(token) => {
            config.log.debug(|| {
                format!(
                    "issuing {} {}",
                    config.field.name(),
                    fingerprint(token.value.expose())
                )
            });
            let token = token.clone();
            Ok(Issued::fresh(entry, token))
        }
        None => Err(no_token_error(config)),
    }
}

fn no_token_error(config: &Config) -> Error {
    Error::provider(format!(
        "the identity provider's response has no {}; choose the token with --token-field",
        config.field.name()
    ))
}

/// When renewal fails but the cached token is still alive, hand it out with
/// a warning: a pipeline keeps working through a short outage.
fn serve_stale_or_fail(config: &Config, current: Option<&Entry>, error: Error) -> Result<Issued> {
    let now = now_secs();
    let alive = current
        .filter(|e| !e.rejected)
        .and_then(|e| e.token(config.field).map(|t| (e, t)))
        .filter(|(_, t)| t.is_alive(now));
    match alive {
        Some((entry, token)) => {
            config.log.warn(&format!(
                "{}; using the cached token, which expires in {}s",
                error.one_line(),
                token.expires_at - now
            ));
            Ok(Issued {
                token: token.clone(),
                entry: entry.clone(),
                expires_at: token.expires_at,
            })
        }
        None => Err(error),
    }
}

/// A server refused `presented` (git's `erase`). If it is the cached token,
/// mark it so the next request renews it; the refresh token is kept.
/// Returns whether the entry was marked.
pub fn reject(config: &Config, presented: &str) -> Result<bool> {
    match config.store.load(&config.key)? {
        Loaded::Hit(entry)
            if entry
                .token(config.field)
                .is_some_and(|t| t.value.expose() == presented) => {}
        _ => return Ok(false),
    }
    let lock = config.store.lock(&config.key, config.lock_timeout)?;
    let Some(mut entry) = config.store.load(&config.key)?.entry() else {
        return Ok(false);
    };
    let matches = entry
        .token(config.field)
        .is_some_and(|t| t.value.expose() == presented);
    if !matches || entry.rejected {
        return Ok(false);
    }
    entry.rejected = true;
    config.store.save(&lock, &entry)?;
    config.log.debug(|| {
        format!(
            "marked token {} as rejected; the next request renews it",
            fingerprint(presented)
        )
    });
    Ok(true)
}

/// What `logout` did, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReport {
    pub server: Option<Logout>,
    pub deleted: bool,
}

/// Ends the session at the server where possible, then deletes the entry —
/// always, even when the server is unreachable.
pub fn logout(config: &Config, credentials: &Credentials) -> Result<LogoutReport> {
    let lock = config.store.lock(&config.key, config.lock_timeout)?;
    let entry = reload(config)?;
    let server = entry
        .as_ref()
        .map(|entry| server_logout(config, credentials, entry));
    let deleted = config.store.remove(&lock, &config.key)?;
    Ok(LogoutReport { server, deleted })
}

fn server_logout(config: &Config, credentials: &Credentials, entry: &Entry) -> Logout {
    let provider = match config.provider() {
        Ok(p) => p,
        Err(e) => return Logout::Failed(e.one_line()),
    };
    let http = match Http::new(&config.tls, config.timeout, config.log) {
        Ok(h) => h,
        Err(e) => return Logout::Failed(e.one_line()),
    };
    let ctx = Context {
        http: &http,
        log: config.log,
        credentials,
        now: now_secs(),
    };
    provider.logout(&ctx, entry)
}
