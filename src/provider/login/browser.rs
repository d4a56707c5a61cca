//! Browser login: the OAuth 2.0 authorization-code grant with PKCE and a
//! loopback redirect (RFC 6749 §4.1, RFC 7636, RFC 8252).
//!
//! 1. Listen on loopback ([`Listener`]); the redirect URI points there.
//! 2. Build the authorization URL with a fresh PKCE challenge, `state` and
//!    `nonce`; print it on stderr and start the browser on it.
//! 3. Wait (at most `--login-timeout`) for the browser to come back with
//!    `code` and `state`. Requests elsewhere (`/favicon.ico`) are answered
//!    404 and ignored; a redirect with the wrong `state`, an `error`, or no
//!    code ends the login.
//! 4. Let the caller exchange the code (with the verifier) for tokens, check
//!    that the id_token carries our `nonce`, and only then tell the tab
//!    whether it worked.
//!
//! The code, the verifier and the tokens never reach stderr, even with -v:
//! only the URL (which carries nothing that buys a token) is shown.

use crate::provider::Credentials;
use std::time::Instant;

use super::loopback::{Incoming, Listener};
use super::pkce::{self, Pkce};
use super::{Settings, opener, random_token};
use crate::error::{Error, Result};
use crate::jwt;
use crate::log::Log;
use crate::provider::Grant;
use crate::secret::Secret;

/// What the authorization request is made of, besides the per-login
/// random values.
pub struct Request<'a> {
    pub authorization_endpoint: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// `--extra-param`s, also sent here (Dex's `connector_id`, Keycloak's
    /// `kc_idp_hint`, `prompt`, …).
    pub extra_params: &'a [(String, String)],
}

/// What the token request needs from a completed redirect.
pub struct Code {
    pub code: Secret,
    pub redirect_uri: String,
    pub verifier: Secret,
}

/// Parameters of the authorization request that `--extra-param` cannot
/// replace: they carry this login's security.
const RESERVED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// Runs a browser login; `exchange` turns the code into tokens.
pub fn login(
    settings: &Settings,
    person: &Credentials,
    log: Log,
    request: &Request<'_>,
    exchange: impl FnOnce(&Code) -> Result<Grant>,
) -> Result<Grant> {
    let listener = Listener::bind(&settings.listen, log)?;
    let pkce = Pkce::generate()?;
    let state = random_token(16)?;
    let nonce = random_token(16)?;
    let url = authorization_url(
        request,
        listener.redirect_uri(),
        &pkce.challenge,
        &state,
        &nonce,
    );
    person.show(&format!(
        "dexcred: log in with your browser; if none opens, open this URL:\n  {url}"
    ));
    opener::open(
        settings.browser_command.as_deref(),
        &url,
        &settings.env,
        log,
    );

    let deadline = Instant::now() + settings.timeout;
    let (code, tab) = wait_for_redirect(&listener, deadline, &state, settings)?;
    let redirect_uri = listener.redirect_uri().to_string();
    // Nothing else may arrive: close the port before the token request.
    drop(listener);
    log.debug(|| {
        format!(
            "got authorization code {}; exchanging it",
            code.fingerprint()
        )
    });
    let result = exchange(&Code {
        code,
        redirect_uri,
        verifier: pkce.verifier,
    })
    .and_then(|grant| check_nonce(&grant, &nonce).map(|()| grant));
    match &result {
        Ok(_) => tab.reply(
            200,
            "Logged in",
            "dexcred is logged in. You may close this tab and return to the terminal.",
        ),
        Err(e) => tab.reply(
            200,
            "Login failed",
            &format!(
                "dexcred could not complete the login: {}. You may close this tab; the terminal says more.",
                e.one_line()
            ),
        ),
    }
    result
}

/// The authorization URL: the endpoint plus the query of RFC 6749 §4.1.1,
/// OpenID Connect's `nonce` and RFC 7636's challenge.
pub fn authorization_url(
    request: &Request<'_>,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
    nonce: &str,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", request.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", request.scope)
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", pkce::METHOD);
    for (k, v) in request
        .extra_params
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
    {
        query.append_pair(k, v);
    }
    let separator = if request.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{}{separator}{}",
        request.authorization_endpoint,
        query.finish()
    )
}

/// Serves the listener until the redirect arrives or the deadline passes.
fn wait_for_redirect(
    listener: &Listener,
    deadline: Instant,
    state: &str,
    settings: &Settings,
) -> Result<(Secret, Incoming)> {
    loop {
        let Some(request) = listener.next(deadline)? else {
            return Err(Error::auth(format!(
                "no login within {}s (--login-timeout): the browser did not come back to dexcred; \
                 run the command again, or raise --login-timeout",
                settings.timeout.as_secs()
            )));
        };
        if request.path != "/" {
            request.reply(
                404,
                "Not found",
                "This address only receives dexcred's login redirect.",
            );
            continue;
        }
        if request.method != "GET" {
            request.reply(
                405,
                "Method not allowed",
                "Only the login redirect is served here.",
            );
            continue;
        }
        match check_redirect(&request.query, state) {
            Ok(Some(code)) => return Ok((code, request)),
            Ok(None) => request.reply(
                404,
                "Not found",
                "This address only receives dexcred's login redirect.",
            ),
            Err(e) => {
                request.reply(
                    400,
                    "Login failed",
                    &format!("{}. You may close this tab.", e.one_line()),
                );
                return Err(e);
            }
        }
    }
}

/// Judges a request to the redirect path. `Ok(None)`: it carries none of
/// the redirect's parameters, so it is not the redirect (a reload, a
/// prefetch); keep waiting. Otherwise the login ends here, with the code or
/// with the reason it failed.
pub fn check_redirect(query: &[(String, String)], expected_state: &str) -> Result<Option<Secret>> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (state, error, code) = (param("state"), param("error"), param("code"));
    if state.is_none() && error.is_none() && code.is_none() {
        return Ok(None);
    }
    // A server may leave `state` out of an error redirect it sends before
    // it has parsed the request; the error is still worth showing. A
    // `state` that is present and wrong, though, is never trusted.
    if state != Some(expected_state) && !(state.is_none() && error.is_some()) {
        return Err(Error::auth(
            "the login redirect's state does not match this login (a redirect from another \
             login or a forged one); the login was stopped, run the command again",
        ));
    }
    if let Some(error) = error {
        let description = param("error_description")
            .map(|d| format!(" ({})", truncate(d, 200)))
            .unwrap_or_default();
        let message = format!(
            "the identity provider refused the login: {}{description}",
            truncate(error, 100)
        );
        return Err(match error {
            "server_error" | "temporarily_unavailable" => Error::provider(message),
            _ => Error::auth(message),
        });
    }
    match code.filter(|c| !c.is_empty()) {
        Some(code) => Ok(Some(Secret::new(code))),
        None => Err(Error::provider(
            "the login redirect carries no authorization code; the identity provider's answer is unusable",
        )),
    }
}

/// OpenID Connect Core §3.1.3.7: the id_token must carry the nonce we
/// sent, or it was not issued for this login (a replayed or substituted
/// response).
pub fn check_nonce(grant: &Grant, nonce: &str) -> Result<()> {
    let Some(id_token) = &grant.id_token else {
        return Ok(());
    };
    match jwt::decode(id_token.value.expose()).and_then(|c| c.nonce) {
        Some(n) if n == nonce => Ok(()),
        Some(_) => Err(Error::provider(
            "the id_token's nonce does not match this login's; the tokens were refused \
             (a replayed or substituted response)",
        )),
        None => Err(Error::provider(
            "the id_token carries no nonce although one was sent; the tokens were refused",
        )),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::StoredToken;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_url_carries_pkce_state_nonce_and_extra_params() {
        let extra = vec![
            ("connector_id".to_string(), "ldap".to_string()),
            ("state".to_string(), "attacker".to_string()),
        ];
        let r = Request {
            authorization_endpoint: "https://idp/auth",
            client_id: "kube cli",
            scope: "openid offline_access",
            extra_params: &extra,
        };
        let url = authorization_url(&r, "http://127.0.0.1:8000", "CH", "ST", "NO");
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://idp/auth");
        let got: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            got,
            q(&[
                ("response_type", "code"),
                ("client_id", "kube cli"),
                ("redirect_uri", "http://127.0.0.1:8000"),
                ("scope", "openid offline_access"),
                ("state", "ST"),
                ("nonce", "NO"),
                ("code_challenge", "CH"),
                ("code_challenge_method", "S256"),
                ("connector_id", "ldap"),
            ])
        );
        let r = Request {
            authorization_endpoint: "https://idp/auth?realm=x",
            ..r
        };
        assert!(authorization_url(&r, "u", "c", "s", "n").starts_with("https://idp/auth?realm=x&"));
    }

    #[test]
    fn redirect_with_matching_state_yields_the_code() {
        let code = check_redirect(&q(&[("code", "C1"), ("state", "S")]), "S")
            .unwrap()
            .unwrap();
        assert_eq!(code.expose(), "C1");
    }

    #[test]
    fn requests_without_redirect_parameters_are_ignored() {
        assert!(check_redirect(&q(&[]), "S").unwrap().is_none());
        assert!(
            check_redirect(&q(&[("foo", "bar")]), "S")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn wrong_or_missing_state_stops_the_login() {
        for query in [
            q(&[("code", "C"), ("state", "other")]),
            q(&[("code", "C")]),
            q(&[("error", "access_denied"), ("state", "other")]),
        ] {
            let e = check_redirect(&query, "S").unwrap_err();
            assert_eq!(e.exit_code(), 3);
            assert!(e.message().contains("state does not match"), "{e}");
        }
    }

    #[test]
    fn error_redirects_say_what_the_server_said() {
        let e = check_redirect(
            &q(&[
                ("error", "access_denied"),
                ("error_description", "End-User aborted interaction"),
                ("state", "S"),
            ]),
            "S",
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            e.message()
                .contains("access_denied (End-User aborted interaction)"),
            "{e}"
        );
        let e = check_redirect(&q(&[("error", "server_error")]), "S").unwrap_err();
        assert_eq!(e.exit_code(), 4);
    }

    #[test]
    fn a_redirect_without_a_code_is_unusable() {
        for query in [q(&[("state", "S")]), q(&[("state", "S"), ("code", "")])] {
            let e = check_redirect(&query, "S").unwrap_err();
            assert_eq!(e.exit_code(), 4);
            assert!(e.message().contains("no authorization code"), "{e}");
        }
    }

    /// A listener on an ephemeral loopback port, and its `host:port`.
    fn bound_listener() -> (Listener, String) {
        let listener = Listener::bind(&[], Log::default()).unwrap();
        let addr = listener
            .redirect_uri()
            .trim_start_matches("http://")
            .to_string();
        (listener, addr)
    }

    #[test]
    fn unrelated_requests_are_answered_404_and_the_redirect_is_awaited() {
        use std::io::{Read, Write};
        let (listener, addr) = bound_listener();
        let client = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for target in ["/favicon.ico", "/?unrelated=1", "/?code=C1&state=S"] {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answers.push(answer);
            }
            answers
        });
        let settings = Settings {
            listen: vec![],
            browser_command: None,
            timeout: std::time::Duration::from_secs(30),
            env: crate::environment::Environment::default(),
        };
        let deadline = Instant::now() + settings.timeout;
        let (code, tab) = wait_for_redirect(&listener, deadline, "S", &settings).unwrap();
        assert_eq!(code.expose(), "C1");
        tab.reply(200, "Logged in", "You may close this tab.");
        let answers = client.join().unwrap();
        assert!(answers[0].starts_with("HTTP/1.1 404"), "{}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 404"), "{}", answers[1]);
        assert!(
            answers[2].contains("You may close this tab."),
            "{}",
            answers[2]
        );
    }

    #[test]
    fn a_tampered_redirect_is_answered_and_ends_the_wait() {
        use std::io::{Read, Write};
        let (listener, addr) = bound_listener();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            write!(s, "GET /?code=C1&state=evil HTTP/1.1\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        });
        let settings = Settings {
            listen: vec![],
            browser_command: None,
            timeout: std::time::Duration::from_secs(30),
            env: crate::environment::Environment::default(),
        };
        let deadline = Instant::now() + settings.timeout;
        let e = wait_for_redirect(&listener, deadline, "S", &settings)
            .err()
            .unwrap();
        assert!(e.message().contains("state does not match"), "{e}");
        let answer = client.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(!answer.contains("C1"), "the code is not echoed: {answer}");
    }

    fn grant_with_id_token(claims: serde_json::Value) -> Grant {
        Grant {
            id_token: Some(StoredToken {
                value: Secret::new(jwt::encode_for_test(&claims)),
                expires_at: 10,
                issued_at: 0,
            }),
            access_token: None,
            refresh_token: None,
            refresh_expires_at: None,
        }
    }

    #[test]
    fn the_id_token_must_carry_our_nonce() {
        assert!(check_nonce(&grant_with_id_token(json!({"nonce": "N1"})), "N1").is_ok());
        let e = check_nonce(&grant_with_id_token(json!({"nonce": "N2"})), "N1").unwrap_err();
        assert!(e.message().contains("nonce does not match"), "{e}");
        let e = check_nonce(&grant_with_id_token(json!({"sub": "x"})), "N1").unwrap_err();
        assert!(e.message().contains("no nonce"), "{e}");
        let no_id_token = Grant {
            id_token: None,
            ..grant_with_id_token(json!({}))
        };
        assert!(check_nonce(&no_id_token, "N1").is_ok());
    }
}
