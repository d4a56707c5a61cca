//! Test doubles for dexcred, all on 127.0.0.1 with background threads that
//! stop when the value is dropped:
//!
//! - [`tls::TestCa`]: a throwaway CA issuing server certificates.
//! - [`http::Server`]: a small HTTP/1.1 server with fault replies
//!   (delay, hang, close, drip, cut).
//! - [`idp::FakeIdp`]: PCD (Keystone, dexclients, Dex), Keycloak and a Basic
//!   client-credentials server, faithful to the reference documents' status
//!   codes, error bodies and refresh-token rules.
//! - [`kube::KubeApi`]: an HTTPS Kubernetes API stub accepting only bearer
//!   tokens the IdP issued; enough for real kubectl `get pods`.
//! - [`git::GitServer`]: git smart HTTP via `git http-backend`, accepting the
//!   IdP's tokens as Bearer or as a Basic password.

pub mod git;
pub mod http;
pub mod idp;
pub mod kube;
pub mod tls;
mod util;

pub use util::{basic_auth_value, form_encode, url_encode};
