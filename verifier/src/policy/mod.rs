//! Appraisal policy: reference values for firmware measurements.

pub mod reference;
