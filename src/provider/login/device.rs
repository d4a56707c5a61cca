//! Device login: the OAuth 2.0 device authorization grant (RFC 8628).
//!
//! 1. POST the client (and scope) to the `device_authorization_endpoint`;
//!    the answer holds a `device_code` (secret: it buys the tokens), a
//!    `user_code` and where to enter it.
//! 2. Show the user the verification URI and the user code on stderr (with
//!    `--browser-command`, start it on `verification_uri_complete`).
//! 3. Poll the token endpoint every `interval` seconds (5 by default):
//!    `authorization_pending` → keep polling; `slow_down` → add 5 seconds
//!    to the interval for good; `access_denied` and `expired_token` → stop.
//!    The wait ends at the code's expiry or `--login-timeout`, whichever
//!    comes first.
//!
//! Ctrl-C needs no handler: nothing is written until tokens arrive, the
//! lock is released by the kernel, and no child process is left waiting.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Settings, opener};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::provider::{ClientAuth, Context, Grant, TokenError, lenient_seconds, token_request};
use crate::secret::Secret;

/// `grant_type` of the polling requests (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the
/// default."
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// RFC 8628 §3.5: `slow_down` increases the interval by 5 seconds for
/// this and all subsequent requests.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Where to start and where to poll, and as whom.
pub struct Request<'a> {
    pub device_authorization_endpoint: &'a str,
    pub token_endpoint: &'a str,
    pub client_id: &'a str,
    pub auth: &'a ClientAuth,
    pub scope: &'a str,
    /// `--extra-param`s, sent with the device authorization request.
    pub extra_params: &'a [(String, String)],
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Deserialize)]
struct RawAuthorization {
    device_code: String,
    user_code: String,
    #[serde(default)]
    verification_uri: Option<String>,
    /// Google's pre-RFC spelling.
    #[serde(default)]
    verification_url: Option<String>,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    interval: Option<i64>,
}

/// A started device login.
pub struct Authorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: Option<Duration>,
    pub interval: Duration,
}

/// Runs a device login to the end.
pub fn login(ctx: &Context<'_>, settings: &Settings, request: &Request<'_>) -> Result<Grant> {
    let started = Instant::now();
    let authorization = start(ctx, request)?;
    let log = ctx.log;
    log.debug(|| {
        format!(
            "device code {} issued; polling every {}s",
            authorization.device_code.fingerprint(),
            authorization.interval.as_secs()
        )
    });
    show(ctx, &authorization);
    if let (Some(command), Some(complete)) = (
        settings.browser_command.as_deref(),
        &authorization.verification_uri_complete,
    ) {
        opener::open(Some(command), complete, &settings.env, log);
    }
    let login_deadline = started + settings.timeout;
    let expiry = authorization.expires_in.map(|d| started + d);
    let poll = || {
        log.debug(|| "asking whether the device login was approved".to_string());
        let fields = [
            ("grant_type", GRANT_TYPE),
            ("device_code", authorization.device_code.expose()),
        ];
        token_request(
            ctx,
            request.token_endpoint,
            request.client_id,
            request.auth,
            &fields,
        )
    };
    let clock = Clock {
        now: Instant::now,
        sleep: std::thread::sleep,
    };
    poll_until_done(
        poll,
        authorization.interval,
        login_deadline,
        expiry,
        settings.timeout,
        clock,
        log,
    )
}

/// Step 1: asks the server for a device code.
fn start(ctx: &Context<'_>, request: &Request<'_>) -> Result<Authorization> {
    let mut form = vec![("scope", request.scope)];
    form.extend(
        request
            .extra_params
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "scope" | "client_id" | "client_secret"))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let basic = request.auth.apply(request.client_id, &mut form);
    let response = ctx
        .http
        .post_form(request.device_authorization_endpoint, &form, basic)
        .map_err(|e| e.context("starting the device login"))?;
    if !response.is_success() {
        return Err(response.refusal("starting the device login"));
    }
    parse_authorization(&response.body).ok_or_else(|| {
        Error::provider(format!(
            "{} answered {} with something that is not a device authorization \
             (device_code, user_code, verification_uri)",
            response.what, response.status
        ))
    })
}

/// Parses and checks the device authorization response; `None` when it is
/// unusable. The user code and URIs are shown on a terminal and the URI may
/// be handed to a browser, so only printable text and http(s) URLs pass.
pub fn parse_authorization(body: &str) -> Option<Authorization> {
    let raw: RawAuthorization = serde_json::from_str(body).ok()?;
    let printable =
        |s: &str| !s.is_empty() && s.len() <= 2048 && s.chars().all(|c| !c.is_control());
    let url = |s: &String| {
        printable(s)
            && (s.starts_with("https://") || s.starts_with("http://"))
            && !s.contains(char::is_whitespace)
    };
    let verification_uri = raw.verification_uri.or(raw.verification_url).filter(url)?;
    if raw.device_code.is_empty() || !printable(&raw.user_code) {
        return None;
    }
    Some(Authorization {
        device_code: Secret::new(raw.device_code),
        user_code: raw.user_code,
        verification_uri,
        verification_uri_complete: raw.verification_uri_complete.filter(url),
        expires_in: raw
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.unsigned_abs())),
        interval: raw
            .interval
            .filter(|s| *s > 0)
            .map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s.unsigned_abs())),
    })
}

/// Step 2: what the person must do, on stderr (stdout is kubectl's or
/// git's). The user code is meant to be read; the device code never is.
fn show(ctx: &Context<'_>, authorization: &Authorization) {
    let mut text = format!(
        "dexcred: to log in, open {} and enter the code {}\n",
        authorization.verification_uri, authorization.user_code
    );
    if let Some(complete) = &authorization.verification_uri_complete {
        text.push_str(&format!(
            "dexcred: or open {complete} and confirm the code there\n"
        ));
    }
    text.push_str("dexcred: waiting for the login to be approved…");
    ctx.credentials.show(&text);
}

/// Time, injectable so the polling rules can be tested exactly.
pub struct Clock<N: Fn() -> Instant, S: FnMut(Duration)> {
    pub now: N,
    pub sleep: S,
}

/// Step 3: polls until the server answers with tokens or a final refusal,
/// or the time is up.
pub fn poll_until_done<N: Fn() -> Instant, S: FnMut(Duration)>(
    mut poll: impl FnMut() -> std::result::Result<Grant, TokenError>,
    mut interval: Duration,
    login_deadline: Instant,
    expiry: Option<Instant>,
    login_timeout: Duration,
    mut clock: Clock<N, S>,
    log: Log,
) -> Result<Grant> {
    let deadline = expiry.map_or(login_deadline, |e| e.min(login_deadline));
    loop {
        let wake = (clock.now)() + interval;
        if wake > deadline {
            (clock.sleep)(deadline.saturating_duration_since((clock.now)()));
            return Err(if expiry.is_some_and(|e| e <= login_deadline) {
                expired()
            } else {
                Error::auth(format!(
                    "the device login was not approved within {}s (--login-timeout); run the command again",
                    login_timeout.as_secs()
                ))
            });
        }
        (clock.sleep)(interval);
        match poll() {
            Ok(grant) => return Ok(grant),
            Err(e) => match e.oauth_code().as_deref() {
                Some("authorization_pending") => {}
                Some("slow_down") => {
                    interval += SLOW_DOWN_STEP;
                    log.debug(|| {
                        format!(
                            "the server asked to slow down; polling every {}s",
                            interval.as_secs()
                        )
                    });
                }
                Some("access_denied") => {
                    return Err(Error::auth(
                        "the device login was denied (access_denied); run the command again to retry",
                    ));
                }
                Some("expired_token") => return Err(expired()),
                _ => return Err(e.into_error("waiting for the device login")),
            },
        }
    }
}

fn expired() -> Error {
    Error::auth(
        "the device code expired before the login was approved (expired_token); run the command again for a new code",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Response;
    use std::cell::{Cell, RefCell};

    fn refused(error: &str) -> TokenError {
        TokenError::Refused(Response {
            status: 400,
            body: format!(r#"{{"error":"{error}"}}"#),
            headers: vec![],
            what: "POST https://idp/token".into(),
        })
    }

    fn grant() -> Grant {
        Grant {
            id_token: None,
            access_token: None,
            refresh_token: None,
            refresh_expires_at: None,
        }
    }

    /// Runs the poller against scripted answers on a fake clock; returns
    /// the result and the sleeps (in seconds) it made.
    fn run(
        answers: Vec<std::result::Result<Grant, TokenError>>,
        interval: u64,
        timeout: u64,
        expires_in: Option<u64>,
    ) -> (Result<Grant>, Vec<u64>, usize) {
        let start = Instant::now();
        let elapsed = Cell::new(Duration::ZERO);
        let sleeps = RefCell::new(Vec::new());
        let mut answers = answers.into_iter();
        let polls = Cell::new(0);
        let result = poll_until_done(
            || {
                polls.set(polls.get() + 1);
                answers
                    .next()
                    .unwrap_or_else(|| Err(refused("authorization_pending")))
            },
            Duration::from_secs(interval),
            start + Duration::from_secs(timeout),
            expires_in.map(|s| start + Duration::from_secs(s)),
            Duration::from_secs(timeout),
            Clock {
                now: || start + elapsed.get(),
                sleep: |d: Duration| {
                    sleeps.borrow_mut().push(d.as_secs());
                    elapsed.set(elapsed.get() + d);
                },
            },
            Log::default(),
        );
        (result, sleeps.into_inner(), polls.get())
    }

    #[test]
    fn pending_keeps_the_interval_and_slow_down_adds_five_seconds_for_good() {
        let (result, sleeps, polls) = run(
            vec![
                Err(refused("authorization_pending")),
                Err(refused("slow_down")),
                Err(refused("authorization_pending")),
                Err(refused("slow_down")),
                Ok(grant()),
            ],
            2,
            300,
            Some(600),
        );
        assert!(result.is_ok());
        assert_eq!(sleeps, [2, 2, 7, 7, 12]);
        assert_eq!(polls, 5);
    }

    #[test]
    fn denied_and_expired_stop_at_once() {
        let (result, _, polls) = run(vec![Err(refused("access_denied"))], 5, 300, None);
        let e = result.unwrap_err();
        assert_eq!((e.exit_code(), polls), (3, 1));
        assert!(e.message().contains("denied"), "{e}");
        let (result, _, polls) = run(
            vec![
                Err(refused("authorization_pending")),
                Err(refused("expired_token")),
            ],
            5,
            300,
            None,
        );
        let e = result.unwrap_err();
        assert_eq!((e.exit_code(), polls), (3, 2));
        assert!(e.message().contains("expired"), "{e}");
    }

    #[test]
    fn other_errors_are_reported_as_the_server_said() {
        let (result, _, _) = run(vec![Err(refused("invalid_client"))], 5, 300, None);
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.message().contains("invalid_client"), "{e}");
        let unreachable = TokenError::Unavailable(Error::provider("connection refused"));
        let (result, _, _) = run(vec![Err(unreachable)], 5, 300, None);
        assert_eq!(result.unwrap_err().exit_code(), 4);
    }

    #[test]
    fn the_wait_ends_at_expiry_or_login_timeout_without_an_extra_poll() {
        // The code expires after 12 s: polls at 5 and 10, then no poll at 15.
        let (result, sleeps, polls) = run(vec![], 5, 300, Some(12));
        let e = result.unwrap_err();
        assert!(e.message().contains("expired"), "{e}");
        assert_eq!((sleeps, polls), (vec![5, 5, 2], 2));
        // --login-timeout first.
        let (result, _, polls) = run(vec![], 5, 11, Some(600));
        let e = result.unwrap_err();
        assert!(e.message().contains("--login-timeout"), "{e}");
        assert_eq!((e.exit_code(), polls), (3, 2));
    }

    #[test]
    fn authorization_responses_are_checked() {
        let a = parse_authorization(
            r#"{"device_code":"D","user_code":"ABCD-EFGH","verification_uri":"https://idp/device",
                "verification_uri_complete":"https://idp/device?user_code=ABCD-EFGH","expires_in":600}"#,
        )
        .unwrap();
        assert_eq!(a.interval, DEFAULT_INTERVAL);
        assert_eq!(a.expires_in, Some(Duration::from_secs(600)));
        assert_eq!(a.device_code.expose(), "D");
        // Google's verification_url spelling.
        assert!(
            parse_authorization(
                r#"{"device_code":"D","user_code":"U","verification_url":"https://g/device","interval":"7"}"#
            )
            .is_some_and(|a| a.interval == Duration::from_secs(7))
        );
        for bad in [
            r#"{"user_code":"U","verification_uri":"https://i/d"}"#,
            r#"{"device_code":"D","user_code":"U"}"#,
            r#"{"device_code":"D","user_code":"U","verification_uri":"javascript:alert(1)"}"#,
            r#"{"device_code":"D","user_code":"U\u001b[2J","verification_uri":"https://i/d"}"#,
            "<html>",
        ] {
            assert!(parse_authorization(bad).is_none(), "{bad}");
        }
    }
}
