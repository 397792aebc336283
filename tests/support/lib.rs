//! Test support shared by the contract suite, the API tests and later AWS adapter tests.
//!
//! - [`moto`]: one moto server per test binary, SDK clients pointed at it, fresh tables.

pub mod moto;
