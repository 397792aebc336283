//! Counting AWS requests: an SDK interceptor that tallies every HTTP request a client sends,
//! by service and operation.
//!
//! Benchmarks and tests attach one [`RequestCounter`] to an SDK client's config
//! (`.interceptor(counter.clone())`) and read [`RequestCounter::snapshot`] afterwards. It counts
//! transmitted *attempts* (the `read_before_transmit` hook), so a retried call counts twice —
//! that is what AWS bills and throttles. One counter can be shared by clients of several
//! services (DynamoDB, SES, EventBridge): keys are `(service, operation)`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Requests sent, keyed by `(service, operation)`, e.g. `("dynamodb", "Query")`.
pub type RequestCounts = BTreeMap<(String, String), u64>;

/// A cheaply cloneable request tally; clones share the same counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<RequestCounts>>,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets every count (e.g. between the phases of a benchmark).
    pub fn reset(&self) {
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
    }

    /// Requests sent for one operation name (any service).
    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((_, op), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        // A poisoned lock only means another thread panicked mid-increment: keep counting.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((service, operation)).or_default() += 1;
        Ok(())
    }
}
