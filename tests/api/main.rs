//! API tests: the real router driven with `oneshot` on an in-memory SQLite store.
//!
//! # Layout
//!
//! - `helpers`: the app under test, tokens, request and problem+json helpers, a
//!   deterministic data generator.
//! - `auth`: 401/403 on every route, RS256/JWKS, tenant isolation.
//! - `sync`: divisions, JSON and NDJSON account sync (10,000 accounts per request), deletes.
//! - `invitations`: counts add up and agree with lists, filters, pagination, search, CSV.
//! - `filter_values`: the values the count filters take per division, each counting what a
//!   count filtered on it counts.
//! - `errors`: every kind of bad input gets a 4xx problem+json.
//! - `failures`: a failing store is an opaque 500 problem.
//! - `unsubscribe`: the public one-click unsubscribe link (signed token, tenant-bound).
//! - `openapi`: `openapi.yaml` and the router serve the same routes.
//! - `conformance`: inputs are read as `openapi.yaml` types them (what Schemathesis found:
//!   `114.0` is an integer, `null` is not, an empty cursor is the first page, an optional
//!   body may be left out, a setting's filters have a count's limits).
//! - `senders`: the sender settings, and every send route refusing a sender outside them.
//! - `console`: the managers' console as its function serves it (shell page, hashed assets,
//!   security and cache headers) and a server without console settings (503 page).
//! - `templates`: templates (save, list, 422s naming the tag) and the invitation preview.
//! - `campaigns`: bulk sends (202 and the fan-out message, the division's 24-hour lock,
//!   idempotency keys), hand-picked selections (`contact_ids`: their 422s, no division lock,
//!   replays), reading a campaign, the individual invite, unsubscribe marking the invitation.
//! - `registration`: the resident pages (invitation link, portal key, confirmation, sign-up
//!   requests) and the staff routes of portal keys and the request queue.
//! - `statistics`: SES events through the webhook (signed, raw, refused), campaign
//!   statistics, a division's campaign history, the drill-down into one category.

mod auth;
mod campaigns;
mod conformance;
mod console;
mod errors;
mod failures;
mod filter_values;
mod helpers;
mod invitations;
mod openapi;
mod recurring;
mod registration;
mod senders;
mod statistics;
mod sync;
mod templates;
mod unsubscribe;
