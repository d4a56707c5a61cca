//! kubectl's exec credential protocol (client.authentication.k8s.io).
//!
//! Input: kubectl puts an ExecCredential with only `spec` in the
//! `KUBERNETES_EXEC_INFO` environment variable; its `apiVersion` is the one
//! the kubeconfig asked for, and `spec.interactive` says whether the plugin
//! may prompt (its stdin is then the terminal).
//!
//! Output: one ExecCredential on stdout with the same `apiVersion`,
//! `status.token` and `status.expirationTimestamp` (RFC 3339, UTC). kubectl
//! reuses the token in-process until that time, so it must be the start of
//! the refresh margin, not the token's real death.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};

pub const V1: &str = "client.authentication.k8s.io/v1";
pub const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// What kubectl told us in `KUBERNETES_EXEC_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    pub api_version: &'static str,
    /// `None` when kubectl did not say (no variable, or no `spec.interactive`).
    pub interactive: Option<bool>,
}

#[derive(Deserialize)]
struct RawExecInfo {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(default)]
    interactive: Option<bool>,
}

/// Parses `KUBERNETES_EXEC_INFO`. Absent or empty means v1 and "unknown"
/// interactivity (the caller then looks at stdin).
pub fn parse_exec_info(raw: Option<&str>) -> Result<ExecInfo> {
    let raw = match raw.map(str::trim) {
        None | Some("") => {
            return Ok(ExecInfo {
                api_version: V1,
                interactive: None,
            });
        }
        Some(r) => r,
    };
    let invalid = |why: String| {
        Error::usage(format!(
            "KUBERNETES_EXEC_INFO is not a valid ExecCredential ({why}); it is set by kubectl"
        ))
    };
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("not a JSON object".to_string()));
    }
    let info: RawExecInfo = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    let api_version = match info.api_version.as_deref() {
        None | Some(V1) => V1,
        Some(V1BETA1) => V1BETA1,
        Some(other) => {
            return Err(Error::usage(format!(
                "unsupported exec credential apiVersion {other:?}; set the kubeconfig's exec \
                 apiVersion to {V1} (or {V1BETA1})"
            )));
        }
    };
    Ok(ExecInfo {
        api_version,
        interactive: info.spec.and_then(|s| s.interactive),
    })
}

#[derive(Serialize)]
struct ExecCredential<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'static str,
    spec: Empty,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Status<'a> {
    #[serde(rename = "expirationTimestamp")]
    expiration_timestamp: String,
    token: &'a str,
}

/// The ExecCredential document, newline-terminated.
pub fn render(api_version: &str, token: &str, expires_at: i64) -> Result<String> {
    let credential = ExecCredential {
        api_version,
        kind: "ExecCredential",
        spec: Empty {},
        status: Status {
            expiration_timestamp: rfc3339(expires_at)?,
            token,
        },
    };
    let mut out = serde_json::to_string(&credential)
        .map_err(|e| Error::local(format!("cannot encode the ExecCredential: {e}")))?;
    out.push('\n');
    Ok(out)
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-23T10:00:00Z`).
pub fn rfc3339(unix: i64) -> Result<String> {
    // Clamped: RFC 3339 has four-digit years, and an entry written by an
    // older dexcred may hold a later expiry.
    OffsetDateTime::from_unix_timestamp(crate::cache::clamp_time(unix))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| Error::provider(format!("token expiry {unix} is not a valid time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_info_versions_and_interactivity() {
        assert_eq!(
            parse_exec_info(None).unwrap(),
            ExecInfo {
                api_version: V1,
                interactive: None
            }
        );
        let v1beta1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":true}}"#;
        assert_eq!(
            parse_exec_info(Some(v1beta1)).unwrap(),
            ExecInfo {
                api_version: V1BETA1,
                interactive: Some(true)
            }
        );
        let with_cluster = r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false,"cluster":{"server":"https://x","config":null}}}"#;
        assert_eq!(
            parse_exec_info(Some(with_cluster)).unwrap().interactive,
            Some(false)
        );
    }

    #[test]
    fn exec_info_errors_are_usage_errors() {
        for bad in [
            "{",
            "[]",
            r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#,
        ] {
            assert_eq!(
                parse_exec_info(Some(bad)).unwrap_err().exit_code(),
                2,
                "{bad}"
            );
        }
    }

    #[test]
    fn renders_what_kubectl_parses() {
        let out = render(V1, "tok\"en", 1_795_000_000).unwrap();
        assert!(out.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apiVersion"], V1);
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "tok\"en");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-11-18T11:06:40Z");
    }
}
