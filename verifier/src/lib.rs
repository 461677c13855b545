//! The Chipward verifier: hands out challenges, appraises evidence against a
//! license token and reference values, and signs what it concluded.
//!
//! Everything a request carries is attacker-controlled. The checks live in
//! [`appraisal`]; the gRPC edge in [`service`] only translates and spends
//! the budgets of [`rate_limits`].

pub mod appraisal;
pub mod challenge;
pub mod claims;
pub mod config;
pub mod evidence;
pub mod fleet;
pub mod location;
pub mod metrics;
pub mod policy;
pub mod rate_limits;
pub mod revocation;
pub mod service;
