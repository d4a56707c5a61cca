//! The wire formats of dexcred's callers: kubectl's exec credential
//! protocol and git's credential helper protocol. Parsing and rendering
//! only; no I/O beyond the reader handed in, no policy.

pub mod git;
pub mod kubectl;
