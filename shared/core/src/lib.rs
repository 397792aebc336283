//! Portal Invitations' core: the domain, the ports and the use cases. It depends on no AWS,
//! SQL, HTTP or Lambda crate — the compiler keeps it that way — so every adapter and every
//! driver (the HTTP layer, the Lambda functions, the local server) is built on it, never the
//! other way round.
//!
//! # Layout
//!
//! - [`domain`]: parsed types (ids, emails, accounts, contacts, filters, the public URL) and
//!   pure rules (classification for the 24-hour rule, counts, the invitation state machine).
//! - [`ports`]: the traits the use cases need — store (split by capability), campaigns, bus,
//!   mailer, clock, the event webhook.
//! - [`usecases`]: sync, count loading, recipient lists, campaigns and their send (with the
//!   in-process queue that drives it on one machine), delivery events to invitation
//!   categories — written once, against the ports.
//! - [`mail`]: an email rendered once as a complete MIME message, and the tags that let its
//!   delivery events find their invitation.
//! - [`demo`]: deterministic demo and benchmark data (the local server's `--demo` tenant).

pub mod demo;
pub mod domain;
pub mod mail;
pub mod ports;
pub mod usecases;

/// `error: cause: cause…`, the whole chain of an error on one line (for logs and Lambda
/// diagnostics; never for a client, whose 5xx bodies stay opaque).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}
