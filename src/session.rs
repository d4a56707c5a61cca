//! The use case every front end shares: "give me a valid token for this
//! identity", plus the two other things done to a session (reject a token
//! a server refused; log out).
//!
//! The life of one request:
//!
//! 1. **Hit path** — read the entry without a lock; if its token is outside
//!    the refresh margin, return it. No network, no lock, no provider.
//! 2. Take the **entry lock** (at most `--lock-timeout`), then **re-read**:
//!    another process may have renewed it while we waited, in which case we
//!    return its token. This is what makes N simultaneous cold starts cost
//!    one request. If the wait times out and the cached token is still
//!    alive, it is served with a warning.
//! 3. Take the **login lock** without waiting. If another process holds
//!    it, that process is logging in and our refresh token is the refused
//!    one or about to be replaced: release the entry lock and wait for
//!    that login (step 5).
//! 4. **Refresh** with the refresh token, under both locks. On success the
//!    entry (with the rotated refresh token) is saved before anything else
//!    happens.
//! 5. **Log in** (password, client credentials, or a browser or
//!    device-code login) when there is no usable
//!    refresh token and a login can happen in this run. The entry lock is
//!    released first: a login may wait on a person, and no renewal may wait
//!    behind one. The login lock serialises logins instead; a process that
//!    had to wait for it (at most `--lock-timeout`, plus `--login-timeout`
//!    when this login may involve a person) re-reads the entry first
//!    (another process logged in → use its token, no prompt, no request).
//!    After the login, the entry lock is taken again just to save.
//! 6. If renewal failed but the old token has not actually expired yet (it
//!    is only inside its margin), serve it with a warning rather than fail.
//!
//! Lock order: the entry lock is only ever held while *trying* the login
//! lock, never while waiting for it, so no two processes wait for each
//! other. The cache is written only with complete new results; a failed
//! renewal leaves the entry exactly as it was. A token that is already
//! expired when it arrives is never cached as one that can be served.

use crate::cache::{Acquired, Entry, EntryLock, Loaded, LoginLock, StoredToken, TokenField};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::protocol::kubectl::rfc3339;
use crate::provider::{
    self, Context, Credentials, Grant, Logout, Provider, RefreshError, now_secs,
};
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
    // from this one later means another process renewed meanwhile; and it
    // is what is served if the lock cannot be had in time.
    let mut seen_entry: Option<Entry> = None;
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
        seen_entry = Some(*entry);
    }
    let seen = seen_entry
        .as_ref()
        .and_then(|e| e.token(config.field))
        .map(|t| t.value.clone());

    log.debug(|| "renewal needed; locking the cache entry".to_string());
    let lock = match config.store.wait_lock(&config.key, config.lock_timeout)? {
        Acquired::Held(lock) => lock,
        Acquired::TimedOut(error) => {
            return serve_stale_or_fail(config, seen_entry.as_ref(), error);
        }
    };
    let current = reload(config)?;
    if let Some(issued) = renewed_meanwhile(config, current.as_ref(), seen.as_ref()) {
        log.debug(|| "another process renewed the entry while we waited".to_string());
        return Ok(issued);
    }
    renew(config, credentials, lock, current, seen.as_ref())
}

/// The entry's token, if another process renewed it since we saw `seen`
/// and it can be handed out. Without --force-refresh any fresh token will
/// do.
fn renewed_meanwhile(
    config: &Config,
    entry: Option<&Entry>,
    seen: Option<&Secret>,
) -> Option<Issued> {
    let entry = entry?;
    let changed = entry.token(config.field).map(|t| &t.value) != seen;
    if config.force_refresh && !changed {
        return None;
    }
    let token = entry.fresh_token(config.field, now_secs())?;
    Some(Issued::fresh(entry.clone(), token.clone()))
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
    lock: EntryLock,
    current: Option<Entry>,
    seen: Option<&Secret>,
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
    let http = Http::new(&config.tls, &config.proxy(), config.timeout, log)?;
    // Another process is logging in: our refresh token is either the one
    // that made it log in (refused) or about to be replaced by its login
    // (Dex deletes the previous session). Wait for that login instead.
    let Some(login_lock) = config.store.try_login_lock(&config.key)? else {
        drop(lock);
        let login = Login::Wait { current, seen };
        return log_in(
            config,
            &http,
            provider.as_ref(),
            credentials,
            working,
            login,
        );
    };
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
            Ok(grant) => return refreshed(config, &lock, current.as_ref(), working, grant),
            Err(RefreshError::Unavailable(error)) => {
                return serve_stale_or_fail(config, current.as_ref(), error);
            }
            Err(RefreshError::Rejected(reason)) => {
                log.debug(|| format!("the refresh token was refused ({reason}); logging in again"));
            }
        }
        if let Some(error) = cannot_log_in(config, provider.as_ref(), credentials) {
            return serve_stale_or_fail(config, current.as_ref(), error);
        }
    }
    // We hold the login lock, taken while holding the entry lock: nobody
    // can have logged in since our re-read. Release the entry lock before
    // the login, which may wait on a person.
    drop(lock);
    let login = Login::Held {
        lock: login_lock,
        current,
    };
    log_in(
        config,
        &http,
        provider.as_ref(),
        credentials,
        working,
        login,
    )
}

/// Saves a refresh grant (the rotated refresh token above all) and issues
/// its token.
fn refreshed(
    config: &Config,
    lock: &EntryLock,
    current: Option<&Entry>,
    mut working: Entry,
    grant: Grant,
) -> Result<Issued> {
    // A response without a usable token to hand out must not make the
    // previous one look renewed; but a rotated refresh token in it is saved
    // all the same.
    let (grant, problem) = check_served_token(config, grant);
    let rotated = grant
        .refresh_token
        .as_ref()
        .is_some_and(|t| Some(t) != working.refresh_token.as_ref());
    if problem.is_none() || rotated {
        provider::apply_grant(&mut working, grant, now_secs(), false);
        config.store.save(lock, &working)?;
        config
            .log
            .debug(|| "refreshed; new tokens saved".to_string());
    }
    if let Some(error) = problem {
        return serve_stale_or_fail(config, current, error);
    }
    issue(config, working)
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
    } else if provider.login_needs_person(credentials)
        && !crate::provider::login::person_present(credentials)
    {
        Some(crate::provider::login::nobody_there(
            &config.account,
            &config.login_command(),
        ))
    } else {
        None
    }
}

/// How a login starts: with the login lock already held, or by waiting
/// for another process's login to finish first.
enum Login<'a> {
    Held {
        lock: LoginLock,
        current: Option<Entry>,
    },
    Wait {
        current: Option<Entry>,
        seen: Option<&'a Secret>,
    },
}

/// Logs in under the login lock — never under the entry lock, as it may
/// wait on a person — and saves the result under the entry lock.
fn log_in(
    config: &Config,
    http: &Http,
    provider: &dyn Provider,
    credentials: &Credentials,
    working: Entry,
    login: Login<'_>,
) -> Result<Issued> {
    let log = config.log;
    let (_login_lock, current, base) = match login {
        Login::Held { lock, current } => (lock, current, working),
        Login::Wait { current, seen } => {
            // Whoever holds the login lock may be waiting on a person if we
            // would be: wait as long as such a login may take, plus the
            // usual bound.
            let wait = if provider.login_needs_person(credentials) {
                config.login_timeout.saturating_add(config.lock_timeout)
            } else {
                config.lock_timeout
            };
            log.debug(|| "another process is logging in; waiting for it".to_string());
            let lock = match config.store.login_lock(&config.key, wait)? {
                Acquired::Held(lock) => lock,
                Acquired::TimedOut(error) => {
                    return serve_stale_or_fail(config, current.as_ref(), error);
                }
            };
            // An unusable entry was warned about already, under the entry lock.
            let latest = config.store.load(&config.key)?.entry();
            if let Some(issued) = renewed_meanwhile(config, latest.as_ref(), seen) {
                log.debug(|| "another process logged in while we waited".to_string());
                return Ok(issued);
            }
            if let Some(error) = cannot_log_in(config, provider, credentials) {
                return serve_stale_or_fail(config, current.as_ref(), error);
            }
            (lock, current, latest.unwrap_or(working))
        }
    };
    // A fresh entry, keeping only what belongs to the provider rather than
    // the session (PCD's client secret, discovered endpoints).
    let now = now_secs();
    let mut fresh = Entry::new(config.key.clone(), now);
    fresh.client_secret = base.client_secret.clone();
    fresh.endpoints = base.endpoints.clone();
    log.debug(|| format!("logging in as {}", config.account));
    let ctx = Context {
        http,
        log,
        credentials,
        now,
    };
    let grant = match provider.login(&ctx, &mut fresh) {
        Ok(grant) => grant,
        Err(error) => return serve_stale_or_fail(config, current.as_ref(), error),
    };
    let (grant, problem) = check_served_token(config, grant);
    provider::apply_grant(&mut fresh, grant, now_secs(), true);
    match config.store.wait_lock(&config.key, config.lock_timeout)? {
        Acquired::Held(lock) => {
            config.store.save(&lock, &fresh)?;
            log.debug(|| "logged in; tokens saved".to_string());
        }
        // Only renewals (each bounded) hold the entry lock, so this is rare;
        // the login happened, so use its token rather than waste it.
        Acquired::TimedOut(error) if problem.is_none() => log.warn(&format!(
            "{}; the new token is used but not cached",
            error.one_line()
        )),
        Acquired::TimedOut(error) => return serve_stale_or_fail(config, current.as_ref(), error),
    }
    if let Some(error) = problem {
        return serve_stale_or_fail(config, current.as_ref(), error);
    }
    issue(config, fresh)
}

/// The token this run hands out must be in the response and still alive by
/// this computer's clock. If it is not, it is taken out of the grant — so
/// it is never cached as a token that can be served — and the reason is
/// returned. The rest of the grant (a rotated refresh token) stays usable.
fn check_served_token(config: &Config, mut grant: Grant) -> (Grant, Option<Error>) {
    let now = now_secs();
    let expired_at = match grant.token(config.field) {
        None => return (grant, Some(no_token_error(config))),
        Some(token) if token.is_alive(now) => return (grant, None),
        Some(token) => token.expires_at,
    };
    match config.field {
        TokenField::IdToken => grant.id_token = None,
        TokenField::AccessToken => grant.access_token = None,
    }
    let when = rfc3339(expired_at).unwrap_or_else(|_| expired_at.to_string());
    let error = Error::provider(format!(
        "the identity provider issued an {} that had already expired (at {when} by this \
         computer's clock); check the clock of this computer and of the identity provider",
        config.field.name()
    ));
    (grant, Some(error))
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
    let http = match Http::new(&config.tls, &config.proxy(), config.timeout, config.log) {
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
