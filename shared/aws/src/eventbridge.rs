//! The EventBridge event bus: each [`SendMessage`] becomes one `PutEvents` entry.
//!
//! # What an entry looks like
//!
//! `Source` is [`EVENT_SOURCE`], `DetailType` is [`SendMessage::detail_type`] (the rules of
//! `template.yaml` route on it), `Detail` is the message as JSON (serde, the same form the
//! consumer deserializes) and `EventBusName` is the bus this adapter was made for. No `Time`
//! and no `Resources`: EventBridge stamps the time, and nothing routes on resources.
//!
//! # Why these choices
//!
//! - **Size is checked before anything is sent.** EventBridge caps an entry at 256 KB
//!   (counted as the UTF-8 bytes of `Source` + `DetailType` + `Detail`, see [`entry_size`]);
//!   we refuse anything over [`MAX_MESSAGE_BYTES`] with [`BusError::TooLarge`] and send
//!   *none* of the messages, so a caller never has to work out which half of a publish got
//!   through. (moto does not enforce the limit at all: it accepted a 300 KB entry.)
//! - **Batches of at most 10 entries and 256 KB.** 10 is PutEvents' entry limit. AWS words
//!   the byte limit as "the total entry size must be less than 256KB" next to batching, so a
//!   batch is also cut before its entries add up to more than [`MAX_CALL_BYTES`]; small
//!   messages are unaffected, a few large delivery batches just take more calls.
//! - **Batches go out one after another**, not concurrently: a fan-out step publishes a
//!   handful of batches, and sending them in parallel would mostly buy throttling.
//! - **Every entry's result is read.** PutEvents answers HTTP 200 even when entries failed;
//!   each failed entry carries an `ErrorCode`. Only the failed entries are sent again — the
//!   accepted ones would otherwise be delivered twice (harmless, the steps are idempotent,
//!   but wasteful). An answer whose `FailedEntryCount` or number of results does not match
//!   the entries cannot say which got through, and is a [`BusError::Backend`].
//! - **What is retried.** Throttling (`ThrottlingException`, any `Throttl…` code) and
//!   EventBridge's own failures (`InternalFailure`, `InternalException`,
//!   `ServiceUnavailable`) go away by themselves; other codes (`MalformedDetail`,
//!   `AccessDeniedException`, `ResourceNotFoundException`, …) never will, so the first of
//!   those ends the publish at once with [`BusError::Rejected`] instead of waiting out the
//!   back-off. A whole call that fails with throttling, HTTP 429/5xx, a timeout or a
//!   connection failure is retried the same way; any other call error is
//!   [`BusError::Backend`] at once.
//! - **Exponential back-off with jitter, bounded.** [`RetryPolicy::DEFAULT`]: 6 calls per
//!   batch, waits starting at 100 ms, doubling, capped at 5 s (about 3 s of waiting in all),
//!   each wait drawn from its upper half so that concurrent Lambdas that were throttled
//!   together do not come back together. Tests pass a policy with tiny delays
//!   ([`EventBridgeBus::with_retry`]). The SDK client's own retries, if enabled, happen
//!   inside each of these calls.
//! - **After the last attempt** the error counts every message not known to be accepted
//!   (including batches never sent) and names the first error code and message. Publishing
//!   all the messages again is safe (see [`portal_core::ports::EventBus`]).
//!
//! moto (5.2.x) implements PutEvents with per-entry results (`MalformedDetail` for a detail
//! that is not JSON) and answers a bus that does not exist with a whole-call
//! `ResourceNotFoundException`.
//!
//! # Registration events
//!
//! The same adapter is the [`RegistrationEvents`] of the registration function: each
//! [`PortalRegistration`] is one entry with source [`REGISTRATION_SOURCE`], detail-type
//! [`DETAIL_TYPE_REGISTRATION`] and the event as JSON, on this adapter's bus, with the same
//! size check, per-entry result check and retries as the send messages. Its source differs
//! from [`EVENT_SOURCE`], so the send rules never see it; the portal subscribes with a rule of
//! its own (`detail-type: ["Portal Registration"]`).

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use portal_core::ports::{
    BusError, EventBus, PortalRegistration, RegistrationEvents, SendMessage,
    DETAIL_TYPE_REGISTRATION, EVENT_SOURCE, MAX_MESSAGE_BYTES, REGISTRATION_SOURCE,
};

/// Most entries one PutEvents call takes.
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// Most entry bytes (as [`entry_size`] counts them) put in one PutEvents call.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// How often, and how patiently, refused entries are sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// PutEvents calls per batch, the first one included (at least 1 is made).
    pub attempts: u32,
    /// The wait before the first retry; each later wait doubles it.
    pub first_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 6 calls, waits from 100 ms doubling up to 5 s.
    pub const DEFAULT: Self = Self {
        attempts: 6,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
    };

    /// The longest wait before retry number `retry` (1 = the first retry):
    /// `first_delay × 2^(retry-1)`, capped at `max_delay`. The actual wait is drawn from
    /// the upper half of it.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Publishes to one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    retry: RetryPolicy,
}

impl EventBridgeBus {
    /// A bus publishing to `bus_name` (a name or an ARN) with [`RetryPolicy::DEFAULT`].
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
            retry: RetryPolicy::DEFAULT,
        }
    }

    /// The same bus with another retry policy (tests use millisecond delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The entry for `message`, with its size; refuses one over [`MAX_MESSAGE_BYTES`].
    fn entry(&self, message: &SendMessage) -> Result<(PutEventsRequestEntry, usize), BusError> {
        let detail = serde_json::to_string(message).map_err(|e| BusError::Backend(Box::new(e)))?;
        let bytes = checked_entry_size(message.detail_type(), &detail)?;
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(message.detail_type())
            .detail(detail)
            .event_bus_name(&self.bus_name)
            .build();
        Ok((entry, bytes))
    }

    /// One PutEvents call: the result of each entry, in order (`Some` = refused).
    async fn put_once(
        &self,
        entries: Vec<PutEventsRequestEntry>,
    ) -> Result<Vec<Option<EntryError>>, CallError> {
        let sent = entries.len();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        let results: Vec<Option<EntryError>> = out
            .entries()
            .iter()
            .map(|r| {
                r.error_code().map(|code| EntryError {
                    code: code.to_owned(),
                    message: r.error_message().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        // A count that disagrees with the entries leaves us not knowing which got through.
        let refused = results.iter().filter(|r| r.is_some()).count();
        if usize::try_from(out.failed_entry_count()) != Ok(refused) {
            return Err(CallError {
                retryable: false,
                detail: format!(
                    "PutEvents reported FailedEntryCount {} but {refused} of its {} results \
                     (for {sent} entries) carry an error code",
                    out.failed_entry_count(),
                    results.len(),
                ),
            });
        }
        Ok(results)
    }
}

#[async_trait]
impl EventBus for EventBridgeBus {
    #[tracing::instrument(skip_all, fields(bus = %self.bus_name, messages = messages.len()))]
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        // Every entry is built and size-checked before the first call, so a message that is
        // too large stops the publish before anything is sent.
        let mut entries = Vec::with_capacity(messages.len());
        let mut sizes = Vec::with_capacity(messages.len());
        for message in messages {
            let (entry, bytes) = self.entry(message)?;
            entries.push(entry);
            sizes.push(bytes);
        }
        let total = entries.len();
        let mut accepted = 0;
        for range in batches(&sizes) {
            let batch = entries[range].to_vec();
            let len = batch.len();
            match put_with_retries(batch, &self.retry, |b| self.put_once(b)).await {
                Ok(()) => accepted += len,
                Err(BatchError::Refused {
                    refused,
                    first,
                    attempts,
                }) => {
                    let failed = total - accepted - (len - refused);
                    tracing::warn!(failed, total, code = %first.code, "events refused");
                    return Err(BusError::Rejected {
                        failed,
                        total,
                        detail: format!(
                            "{}: {} (after {attempts} attempt{})",
                            first.code,
                            first.message,
                            if attempts == 1 { "" } else { "s" }
                        ),
                    });
                }
                Err(BatchError::Call { detail, attempts }) => {
                    tracing::warn!(total, accepted, error = %detail, "PutEvents failed");
                    return Err(BusError::Backend(
                        format!(
                            "PutEvents failed after {attempts} attempt{} ({accepted} of {total} \
                             events accepted before): {detail}",
                            if attempts == 1 { "" } else { "s" }
                        )
                        .into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl EventBridgeBus {
    /// The entry for a registration event, with the same size rule as the send messages.
    fn registration_entry(
        &self,
        event: &PortalRegistration,
    ) -> Result<PutEventsRequestEntry, BusError> {
        let detail = serde_json::to_string(event).map_err(|e| BusError::Backend(Box::new(e)))?;
        let bytes = REGISTRATION_SOURCE.len() + DETAIL_TYPE_REGISTRATION.len() + detail.len();
        if bytes > MAX_MESSAGE_BYTES {
            return Err(BusError::TooLarge { bytes });
        }
        Ok(PutEventsRequestEntry::builder()
            .source(REGISTRATION_SOURCE)
            .detail_type(DETAIL_TYPE_REGISTRATION)
            .detail(detail)
            .event_bus_name(&self.bus_name)
            .build())
    }
}

#[async_trait]
impl RegistrationEvents for EventBridgeBus {
    /// One PutEvents entry (see the module docs), retried per this bus's [`RetryPolicy`].
    #[tracing::instrument(skip_all, fields(bus = %self.bus_name, tenant = %event.tenant))]
    async fn registered(&self, event: &PortalRegistration) -> Result<(), BusError> {
        let entry = self.registration_entry(event)?;
        match put_with_retries(vec![entry], &self.retry, |b| self.put_once(b)).await {
            Ok(()) => Ok(()),
            Err(BatchError::Refused {
                first, attempts, ..
            }) => {
                tracing::warn!(code = %first.code, "registration event refused");
                Err(BusError::Rejected {
                    failed: 1,
                    total: 1,
                    detail: format!(
                        "{}: {} (after {attempts} attempt{})",
                        first.code,
                        first.message,
                        if attempts == 1 { "" } else { "s" }
                    ),
                })
            }
            Err(BatchError::Call { detail, attempts }) => {
                tracing::warn!(error = %detail, "PutEvents failed for a registration event");
                Err(BusError::Backend(
                    format!(
                        "PutEvents failed after {attempts} attempt{}: {detail}",
                        if attempts == 1 { "" } else { "s" }
                    )
                    .into(),
                ))
            }
        }
    }
}

/// The size EventBridge counts for an entry with our source and no time or resources: the
/// UTF-8 bytes of source, detail-type and detail.
pub fn entry_size(detail_type: &str, detail: &str) -> usize {
    EVENT_SOURCE.len() + detail_type.len() + detail.len()
}

/// [`entry_size`], or [`BusError::TooLarge`] when it is over [`MAX_MESSAGE_BYTES`].
pub fn checked_entry_size(detail_type: &str, detail: &str) -> Result<usize, BusError> {
    let bytes = entry_size(detail_type, detail);
    if bytes > MAX_MESSAGE_BYTES {
        return Err(BusError::TooLarge { bytes });
    }
    Ok(bytes)
}

/// Cuts entries of the given sizes, in order, into batches of at most
/// [`MAX_ENTRIES_PER_CALL`] entries and [`MAX_CALL_BYTES`] bytes (an entry bigger than that
/// on its own still gets a batch: [`checked_entry_size`] keeps those out beforehand).
pub fn batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_ENTRIES_PER_CALL || bytes + size > MAX_CALL_BYTES;
        if i > start && full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// An entry PutEvents refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryError {
    code: String,
    message: String,
}

/// A PutEvents call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallError {
    retryable: bool,
    detail: String,
}

/// How a batch ended when not every entry was accepted.
#[derive(Debug, PartialEq, Eq)]
enum BatchError {
    /// `refused` entries of the batch were still refused; `first` is the error that ended
    /// it (the first non-retryable one, else the first of the last call).
    Refused {
        refused: usize,
        first: EntryError,
        attempts: u32,
    },
    /// The last call failed as a whole.
    Call { detail: String, attempts: u32 },
}

/// Whether an entry error code (or a call's error code) is worth another try.
fn retryable_code(code: &str) -> bool {
    code.starts_with("Throttl")
        || matches!(
            code,
            "InternalFailure"
                | "InternalException"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
        )
}

/// Sends `entries` with `put`, sending the refused ones again per `policy` (see the module
/// docs). Generic over the entry type and the call so the loop is tested without AWS.
async fn put_with_retries<E, F, Fut>(
    entries: Vec<E>,
    policy: &RetryPolicy,
    mut put: F,
) -> Result<(), BatchError>
where
    E: Clone,
    F: FnMut(Vec<E>) -> Fut,
    Fut: Future<Output = Result<Vec<Option<EntryError>>, CallError>>,
{
    let attempts = policy.attempts.max(1);
    let mut pending = entries;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt == attempts;
        match put(pending.clone()).await {
            Ok(results) if results.len() != pending.len() => {
                // Results pair with entries by position: this answer cannot be paired.
                return Err(BatchError::Call {
                    detail: format!(
                        "PutEvents answered {} results for {} entries",
                        results.len(),
                        pending.len()
                    ),
                    attempts: attempt,
                });
            }
            Ok(results) => {
                let refused = results.iter().filter(|r| r.is_some()).count();
                let mut again = Vec::new();
                let mut first = None;
                for (entry, result) in pending.into_iter().zip(results) {
                    let Some(err) = result else { continue };
                    if !retryable_code(&err.code) {
                        // No wait will fix this one: stop now.
                        return Err(BatchError::Refused {
                            refused,
                            first: err,
                            attempts: attempt,
                        });
                    }
                    first.get_or_insert(err);
                    again.push(entry);
                }
                let Some(first) = first else { return Ok(()) };
                if last {
                    return Err(BatchError::Refused {
                        refused: again.len(),
                        first,
                        attempts: attempt,
                    });
                }
                tracing::warn!(
                    refused = again.len(),
                    code = %first.code,
                    attempt,
                    "PutEvents refused entries; sending them again"
                );
                pending = again;
            }
            Err(err) => {
                if last || !err.retryable {
                    return Err(BatchError::Call {
                        detail: err.detail,
                        attempts: attempt,
                    });
                }
                tracing::warn!(error = %err.detail, attempt, "PutEvents failed; trying again");
            }
        }
        tokio::time::sleep(jittered(policy.backoff(attempt))).await;
    }
}

/// A wait drawn uniformly from the upper half of `max` ("equal jitter").
fn jittered(max: Duration) -> Duration {
    let half = max / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Sorts a failed call into retryable or not (see the module docs).
fn classify(err: SdkError<PutEventsError>) -> CallError {
    let detail = DisplayErrorContext(&err).to_string();
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => {
            matches!(service.err(), PutEventsError::InternalException(_))
                || service.err().code().is_some_and(retryable_code)
                || retryable_status(service.raw().status().as_u16())
        }
        SdkError::ResponseError(r) => retryable_status(r.raw().status().as_u16()),
        _ => false,
    };
    CallError { retryable, detail }
}

fn retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eventbridge::error::ErrorMetadata;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use portal_core::domain::{CampaignId, ContactId, DivisionId, Email, TenantId};
    use portal_core::ports::Recipient;
    use std::sync::Mutex;

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };

    fn refused(code: &str) -> Option<EntryError> {
        Some(EntryError {
            code: code.into(),
            message: format!("{code} happened"),
        })
    }

    /// A fake PutEvents: answers each call with the next scripted reply, recording what
    /// entries each call carried.
    struct Script {
        replies: Mutex<Vec<Result<Vec<Option<EntryError>>, CallError>>>,
        calls: Mutex<Vec<Vec<u32>>>,
    }

    impl Script {
        fn new(mut replies: Vec<Result<Vec<Option<EntryError>>, CallError>>) -> Self {
            replies.reverse();
            Self {
                replies: Mutex::new(replies),
                calls: Mutex::new(Vec::new()),
            }
        }

        async fn put(&self, entries: Vec<u32>) -> Result<Vec<Option<EntryError>>, CallError> {
            let n = entries.len();
            self.calls.lock().unwrap().push(entries);
            self.replies
                .lock()
                .unwrap()
                .pop()
                .unwrap_or_else(|| Ok(vec![None; n]))
        }

        fn calls(&self) -> Vec<Vec<u32>> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn only_the_refused_entries_are_sent_again() {
        let script = Script::new(vec![
            Ok(vec![
                None,
                refused("ThrottlingException"),
                None,
                refused("InternalFailure"),
            ]),
            Ok(vec![None, refused("ThrottlingException")]),
        ]);
        let out = put_with_retries(vec![1, 2, 3, 4], &FAST, |b| script.put(b)).await;
        assert_eq!(out, Ok(()));
        assert_eq!(script.calls(), vec![vec![1, 2, 3, 4], vec![2, 4], vec![4]]);
    }

    #[tokio::test]
    async fn entries_still_throttled_after_the_last_attempt_are_reported() {
        let script = Script::new(vec![
            Ok(vec![
                None,
                refused("ThrottlingException"),
                refused("Throttling"),
            ]),
            Ok(vec![None, refused("ThrottlingException")]),
            Ok(vec![refused("ThrottlingException")]),
            Ok(vec![refused("ThrottlingException")]),
        ]);
        let out = put_with_retries(vec![1, 2, 3], &FAST, |b| script.put(b)).await;
        let Err(BatchError::Refused {
            refused: n,
            first,
            attempts,
        }) = out
        else {
            panic!("{out:?}")
        };
        assert_eq!((n, attempts), (1, FAST.attempts));
        assert_eq!(first.code, "ThrottlingException");
        assert_eq!(
            script.calls(),
            vec![vec![1, 2, 3], vec![2, 3], vec![3], vec![3]]
        );
    }

    #[tokio::test]
    async fn an_entry_refused_for_good_ends_the_batch_without_waiting() {
        let script = Script::new(vec![Ok(vec![
            refused("ThrottlingException"),
            refused("MalformedDetail"),
            None,
        ])]);
        let out = put_with_retries(vec![1, 2, 3], &FAST, |b| script.put(b)).await;
        let Err(BatchError::Refused {
            refused: n, first, ..
        }) = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(first.code, "MalformedDetail");
        assert_eq!(n, 2);
        assert_eq!(script.calls().len(), 1);
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_whole_and_a_bad_one_is_not() {
        let throttled = CallError {
            retryable: true,
            detail: "slow down".into(),
        };
        let script = Script::new(vec![Err(throttled.clone())]);
        assert_eq!(
            put_with_retries(vec![1, 2], &FAST, |b| script.put(b)).await,
            Ok(())
        );
        assert_eq!(script.calls(), vec![vec![1, 2], vec![1, 2]]);

        let script = Script::new(vec![Err(CallError {
            retryable: false,
            detail: "no such bus".into(),
        })]);
        let out = put_with_retries(vec![1, 2], &FAST, |b| script.put(b)).await;
        assert!(
            matches!(&out, Err(BatchError::Call { detail, attempts: 1 }) if detail == "no such bus")
        );
        assert_eq!(script.calls().len(), 1);

        let script = Script::new(vec![Err(throttled); 10]);
        let out = put_with_retries(vec![1], &FAST, |b| script.put(b)).await;
        assert!(matches!(out, Err(BatchError::Call { attempts: 4, .. })));
        assert_eq!(script.calls().len(), 4);
    }

    #[test]
    fn batches_hold_at_most_ten_entries() {
        assert_eq!(batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(batches(&[100; 25]), vec![0..10, 10..20, 20..25]);
        assert_eq!(batches(&[100; 10]), vec![0..10]);
        assert_eq!(batches(&[100; 11]), vec![0..10, 10..11]);
    }

    #[test]
    fn batches_stay_under_the_call_byte_limit() {
        let big = 100 * 1024;
        assert_eq!(batches(&[big, big, big]), vec![0..2, 2..3]);
        assert_eq!(
            batches(&[MAX_MESSAGE_BYTES, 10, MAX_MESSAGE_BYTES]),
            vec![0..2, 2..3]
        );
        assert_eq!(batches(&[MAX_CALL_BYTES, 1]), vec![0..1, 1..2]);
        for batch in batches(&[big, 1, 2, big, big, 3, 4, 5, 6, 7, 8, 9, 10, 11]) {
            assert!(batch.len() <= MAX_ENTRIES_PER_CALL);
        }
    }

    #[test]
    fn the_size_check_counts_source_detail_type_and_detail() {
        let dt = "Campaign Delivery";
        let fits = "x".repeat(MAX_MESSAGE_BYTES - EVENT_SOURCE.len() - dt.len());
        assert_eq!(checked_entry_size(dt, &fits).unwrap(), MAX_MESSAGE_BYTES);
        let over = format!("{fits}x");
        assert!(matches!(
            checked_entry_size(dt, &over),
            Err(BusError::TooLarge { bytes }) if bytes == MAX_MESSAGE_BYTES + 1
        ));
        // Bytes, not characters.
        assert_eq!(entry_size("", "é"), EVENT_SOURCE.len() + 2);
    }

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_the_cap() {
        let p = RetryPolicy::DEFAULT;
        let waits: Vec<u64> = (1..=8).map(|r| p.backoff(r).as_millis() as u64).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.backoff(200), p.max_delay);
        for _ in 0..100 {
            let w = jittered(Duration::from_millis(400));
            assert!(w >= Duration::from_millis(200) && w <= Duration::from_millis(400));
        }
    }

    fn service(err: PutEventsError, status: u16) -> SdkError<PutEventsError> {
        let raw = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn generic(code: &str) -> PutEventsError {
        PutEventsError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    #[test]
    fn call_errors_are_retried_only_when_waiting_can_help() {
        assert!(classify(service(generic("ThrottlingException"), 400)).retryable);
        assert!(classify(service(generic("Odd"), 429)).retryable);
        assert!(classify(service(generic("InternalFailure"), 500)).retryable);
        assert!(classify(SdkError::timeout_error("slow")).retryable);
        let missing = classify(service(generic("ResourceNotFoundException"), 400));
        assert!(!missing.retryable);
        assert!(
            missing.detail.contains("ResourceNotFoundException"),
            "{missing:?}"
        );
        assert!(!classify(service(generic("AccessDeniedException"), 400)).retryable);
    }

    #[test]
    fn an_entry_carries_source_detail_type_bus_and_the_message_as_json() {
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .build(),
        );
        let bus = EventBridgeBus::new(client, "portal-bus");
        let message = SendMessage::Deliver {
            tenant: TenantId::parse("t1").unwrap(),
            campaign_id: CampaignId::parse("0".repeat(32)).unwrap(),
            recipients: vec![Recipient {
                contact_id: ContactId::parse("c1").unwrap(),
                email: Email::parse("jane@example.com").unwrap(),
                contact_name: "Jane".into(),
                account_number: "A-1".into(),
                account_name: "Doe".into(),
                division_id: DivisionId::parse("d1").unwrap(),
                division_name: "Lakeside".into(),
                portal_key: String::new(),
                fresh: false,
            }],
            spec: None,
        };
        let (entry, bytes) = bus.entry(&message).unwrap();
        assert_eq!(entry.source(), Some(EVENT_SOURCE));
        assert_eq!(entry.detail_type(), Some("Campaign Delivery"));
        assert_eq!(entry.event_bus_name(), Some("portal-bus"));
        let detail = entry.detail().unwrap();
        assert_eq!(
            serde_json::from_str::<SendMessage>(detail).unwrap(),
            message
        );
        assert_eq!(bytes, entry_size("Campaign Delivery", detail));
    }

    #[test]
    fn a_registration_entry_carries_its_source_detail_type_bus_and_the_event_as_json() {
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                .build(),
        );
        let bus = EventBridgeBus::new(client, "portal-bus");
        let event = PortalRegistration {
            tenant: TenantId::parse("t1").unwrap(),
            email: Email::parse("jane@example.com").unwrap(),
            name: "Jane".into(),
            contact_ids: vec![ContactId::parse("c1").unwrap()],
            account_ids: vec![portal_core::domain::AccountId::parse("a1").unwrap()],
            via: portal_core::domain::LoginVia::Invitation,
            campaign_id: Some(CampaignId::parse("0".repeat(32)).unwrap()),
            registered_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let entry = bus.registration_entry(&event).unwrap();
        assert_eq!(entry.source(), Some(REGISTRATION_SOURCE));
        assert_eq!(entry.detail_type(), Some(DETAIL_TYPE_REGISTRATION));
        assert_eq!(entry.event_bus_name(), Some("portal-bus"));
        let detail: serde_json::Value = serde_json::from_str(entry.detail().unwrap()).unwrap();
        assert_eq!(detail, serde_json::to_value(&event).unwrap());
        assert_eq!(detail["registered_at"], "1970-01-01T00:00:00Z");

        let huge = PortalRegistration {
            name: "x".repeat(MAX_MESSAGE_BYTES),
            ..event
        };
        assert!(matches!(
            bus.registration_entry(&huge),
            Err(BusError::TooLarge { .. })
        ));
    }
}
