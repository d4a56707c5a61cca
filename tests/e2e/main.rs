//! The end-to-end tests: the real dexcred binary (and real kubectl, git,
//! curl, tinyproxy, the oidc-provider npm server) against loopback servers.
//!
//! One test binary with one module per area, so the testkit and every
//! dependency are linked once rather than once per file. Shared helpers are
//! in `common`; each module uses them with `use crate::common::*;`.
//! nextest names a test `e2e` `module::test_name`, so a filter such as
//! `-E 'binary(e2e) and test(/^locks::/)'` runs one area.

mod common;

mod browser_login;
mod cli;
mod crash;
mod exchange;
mod expiry;
mod fastpath;
mod git;
mod hardening;
mod hostile_cache;
mod idp_faults;
mod kubeconfig;
mod kubectl;
mod locks;
mod oidc_interactive;
mod oidc_provider;
mod packaging;
mod providers;
mod secrets;
mod servers_network;
mod sso_login;
mod static_build;
mod torture;
