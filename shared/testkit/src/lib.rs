//! What the tests and benchmarks share.
//!
//! - [`moto`]: the one moto launcher (one server per test binary, or a benchmark's own,
//!   stock or through a patching Python script), the one SDK configuration every client for
//!   it is built from (DynamoDB, SES v2, EventBridge, SQS; optionally counting requests),
//!   fresh tables, turns on moto ([`moto::Exclusive`]) and what moto's SES received.
//! - [`builders`]: accounts, contacts and campaigns with named fields and test defaults
//!   ([`builders::AccountBuilder`], [`builders::ContactBuilder`],
//!   [`builders::CampaignBuilder`]).
//! - [`null`]: adapters that accept everything and keep nothing ([`null::NullMailer`]).

pub mod builders;
pub mod moto;
pub mod null;
