//! The testkit's own tests: each fake server against real clients (ureq,
//! curl, git, kubectl) and the reference documents' status codes and
//! bodies. One test binary, one module per fake, so the testkit and its
//! dependencies are linked once; shared helpers are in `common`.

mod common;

mod basic_cc;
mod fake_idp_bin;
mod faults_tls;
mod git;
mod idp_keycloak;
mod idp_pcd;
mod kube;
mod odd_input;
