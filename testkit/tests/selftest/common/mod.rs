//! A tiny HTTP client for the testkit's own tests (ureq 3, the client the
//! product uses).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use dexcred_testkit::tls::TestCa;
use dexcred_testkit::{basic_auth_value, form_encode};
use serde_json::Value;

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn builder() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
}

/// An agent for plain HTTP.
pub fn agent() -> ureq::Agent {
    builder().build().into()
}

/// An agent with a custom global timeout.
pub fn agent_with_timeout(timeout: Duration) -> ureq::Agent {
    builder().timeout_global(Some(timeout)).build().into()
}

/// An agent that trusts `ca` only (or nothing but webpki roots with `None`).
pub fn tls_agent(ca: Option<&TestCa>) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let roots = match ca {
        Some(ca) => {
            RootCerts::Specific(Arc::new(vec![Certificate::from_der(&ca.der()).to_owned()]))
        }
        None => RootCerts::Specific(Arc::new(Vec::new())),
    };
    builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .into()
}

fn read(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Resp, ureq::Error> {
    let mut resp = result?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// POST a form, optionally with Basic client credentials.
pub fn try_post_form(
    agent: &ureq::Agent,
    url: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<Resp, ureq::Error> {
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        req = req.header("Authorization", &basic_auth_value(id, secret));
    }
    read(req.send(form_encode(pairs)))
}

pub fn post_form(url: &str, pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> Resp {
    try_post_form(&agent(), url, pairs, basic).expect("request")
}

/// POST a raw body with the given headers.
pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read(req.send(body.to_owned())).expect("request")
}

/// GET with headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read(req.call()).expect("request")
}
