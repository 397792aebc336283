//! Deployment tests: `template.yaml` (and README.md's permissions table) agree with the code.
//! Nothing is deployed or built; the files are read and compared.
//!
//! # Layout
//!
//! - `yaml`: reading the template — CloudFormation's intrinsic tags, resources, functions,
//!   their events and policy statements.
//! - `functions`: one function per HTTP job plus `delivery`, each a workspace crate's binary,
//!   each given the settings it reads and no secret it does not.
//! - `routes`: `openapi.yaml`, `portal_http::ROUTES` and the template's `HttpApi` events list
//!   the same routes; each is wired to its job's function, and only the public ones skip the
//!   JWT authorizer.
//! - `iam`: each role grants exactly the actions of its row in README.md's
//!   `## Functions and permissions`, by name, on named resources.
//! - `send`: the send bus's rules, who publishes and who sends email, the dead-letter queue.
//! - `ses_events`: SES events reach `ses-events` by exactly one route (SNS or EventBridge).
//! - `registration`: the Cognito user pool and its app client, who may call Cognito, and the
//!   throttling of the public registration pages.
//! - `recurring`: only `recurring` manages schedules, only in the stack's schedule group,
//!   passing only the scheduler's execution role; that role may only invoke `recurring` (and
//!   keep undeliverable firings in the schedules' dead-letter queue).
//! - `sweep`: the sweeper's schedule on `send`, its input, its idle-time parameter and the
//!   index it lists from.
//! - `console`: the console's function holds no data: no permission of its own, no AWS
//!   client in its crate, only its two public routes, its sign-in settings from parameters.

mod console;
mod functions;
mod iam;
mod recurring;
mod registration;
mod routes;
mod send;
mod ses_events;
mod sweep;
mod yaml;
