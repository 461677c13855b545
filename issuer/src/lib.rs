//! The Chipward license issuer.

pub mod ledger;
