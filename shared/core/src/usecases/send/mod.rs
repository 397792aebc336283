//! Sending a campaign: fan-out (claim recipients, emit batches) and delivery (render, send,
//! record the outcome), written once against the ports and driven in-process by
//! [`run_campaign`] (the local server) or by EventBridge-triggered functions.
//!
//! # Layout
//!
//! - [`fan_out`]: [`fan_out_page`] reads one page of the campaign's recipients, claims them
//!   under the contacts' 24-hour rule ([`crate::ports::CampaignStore::claim_contacts`]) and
//!   answers [`SendBatch`]es of at most [`MAX_BATCH`] invitations (what one PutEvents entry
//!   will carry).
//! - [`deliver`]: [`deliver_batch`] sends the batch's invitations that are still
//!   `in_process`, with back-off on throttling, a maximum send rate, and the pause threshold.
//! - [`queue`]: the in-process driver on one machine — [`QueueBus`], [`drain`],
//!   [`run_campaign`] and the local server's worker ([`InProcessBus`]).
//! - here: the dependencies ([`SendDeps`]), the configuration ([`SendConfig`]), the
//!   registration-token derivation, the rate limiter, and [`handle`], the one entry point of
//!   every driver (the Lambda functions, the in-process queue).
//!
//! # Resumability
//!
//! Every step can die and be re-run from the start of the campaign:
//!
//! - a replayed page claims nothing new: the invitation's key is (campaign, contact), so the
//!   claim answers `AlreadyClaimedByThisCampaign`, which fan-out turns into the same batch
//!   again; the page is listed over *all* filtered contacts (not the `eligible` group), so a
//!   contact this campaign just claimed — now held and `pending` — is still on the page;
//! - delivery skips an invitation that is already `sent` or `failed`, so a duplicated batch
//!   sends nothing twice.
//!
//! # Registration tokens: derived, never stored
//!
//! `[PortalLink]` needs the raw token at delivery time, but only its hash may be stored.
//! The token is therefore derived: `base64url(HMAC-SHA256(token_secret, "reg1|tenant|campaign|contact"))`
//! — 256 bits that nobody without the server secret can compute. Fan-out stores its SHA-256
//! ([`crate::domain::hash_token`]); delivery derives the same token again, so a redelivery
//! renders the same link and the stored hash still matches it. Rotating the secret
//! invalidates the links of invitations not yet sent (they would render a token whose hash is
//! not stored): rotate between campaigns.
//!
//! # At-least-once, with a minimal window
//!
//! An email is sent, then its invitation is marked `sent`. A process that dies in between
//! (after the mail service accepted the message, before the write) re-sends that one email
//! when re-run: there is no idempotent send in SES to close the window. The window is one
//! store write wide; a *failing* write (rather than a dead process) is retried in place
//! ([`SendConfig::max_attempts`]) before giving up. The opposite order (mark first) would
//! lose invitations silently on the same crash, which the spec forbids.

pub mod deliver;
pub mod fan_out;
pub mod queue;
pub mod sweep;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::domain::unsubscribe::UnsubscribeSigner;
use crate::domain::PublicUrl;
use crate::domain::{
    Campaign, CampaignEvent, CampaignId, CampaignStatus, ContactId, InvalidTransition, TenantId,
};
use crate::ports::{BusError, Clock, EventBus, Mailer, SendMessage, Store, StoreError};

pub use deliver::{batch_key, deliver_batch, DeliveryReport};
pub use fan_out::{fan_out_page, FanOutStep, SendBatch, MAX_BATCH};
pub use queue::{drain, run_campaign, InProcessBus, QueueBus};

/// Most secret-less registration keys are refused: the token secret must be this long.
pub const MIN_TOKEN_SECRET_LEN: usize = 32;

/// Waits. Injected so tests never sleep.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, d: Duration);
}

/// Sleeps on the tokio timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Tunables of a send.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Recipients read per fan-out page, ≤ [`crate::ports::MAX_FAN_OUT_PAGE`] (claimed in
    /// calls of ≤ [`crate::ports::MAX_CLAIMS`]).
    pub page_size: u32,
    /// How long a registration link stays valid.
    pub token_ttl: time::Duration,
    /// Most sends per second across this process; `None` = unlimited.
    pub max_send_rate: Option<f64>,
    /// Attempts per message on throttling or transient failures (and per outcome write).
    pub max_attempts: u32,
    /// First back-off; doubled per attempt up to [`SendConfig::max_backoff`].
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The campaign pauses itself once more than this many of its invitations failed.
    pub failure_threshold: u64,
    /// Delivery writes its outcomes after this many sends (and at the end of a batch). A
    /// process killed after the mail service accepted a message but before its outcome was
    /// written re-sends that message on the re-run: 1 makes that window one message wide at
    /// one store write per email; DynamoDB deployments trade it for fewer requests.
    pub outcome_flush: usize,
    /// Emails of one batch in flight at once (the rate limit still applies). A process
    /// killed mid-batch may re-send up to `outcome_flush + send_concurrency - 1` emails.
    pub send_concurrency: usize,
    /// How long a delivery batch's lease lasts without news from its holder (each send
    /// group renews it): a holder that dies leaves the batch to others after this long.
    pub lease_ttl: time::Duration,
    /// How long after a send group started its emails count as possibly accepted by the
    /// mail service: a resumed batch re-sends an invitation of an unfinished group still
    /// `pending` only once this has passed (SES's Send event, which marks it `sent`, would
    /// have arrived), and stops until then.
    pub ack_grace: time::Duration,
    /// Bus messages the in-process drivers ([`run_campaign`], the local server's worker)
    /// handle at once: with more than one, the next fan-out page is claimed while the last
    /// page's batches are delivered. Lambda runs one message per invocation.
    pub step_concurrency: usize,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            page_size: crate::ports::MAX_FAN_OUT_PAGE,
            token_ttl: time::Duration::days(14),
            max_send_rate: Some(14.0),
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            failure_threshold: 100,
            outcome_flush: 1,
            send_concurrency: 1,
            // Longer than the delivery function's 15-minute timeout: a live holder never
            // loses its lease mid-group, however long throttling stretches the group.
            lease_ttl: time::Duration::minutes(16),
            ack_grace: time::Duration::minutes(10),
            step_concurrency: 1,
        }
    }
}

/// Everything a send needs.
#[derive(Clone)]
pub struct SendDeps {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    /// Signs the unsubscribe links of emails: only a process that delivers needs it (a
    /// delivery without it fails with [`SendError::NoUnsubscribeKey`]).
    pub unsubscribe: Option<Arc<UnsubscribeSigner>>,
    pub tokens: Arc<TokenDeriver>,
    /// Base of the links in emails, no trailing `/`.
    pub public_url: PublicUrl,
    pub config: SendConfig,
    pub limiter: Arc<RateLimiter>,
}

/// Why a send step failed. Every variant is safe to retry by re-running the step.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("campaign {0} not found")]
    CampaignNotFound(CampaignId),
    /// This process was started without the unsubscribe secret, so it cannot deliver (its
    /// emails would carry no working unsubscribe link): a deployment error.
    #[error("this process has no unsubscribe secret and cannot deliver emails")]
    NoUnsubscribeKey,
    /// The mail service kept throttling past the attempts: re-run later; the invitation
    /// stays `in_process`.
    #[error("the mail service is still throttling: {0}")]
    Throttled(String),
    /// A resumed batch holds invitations a dead holder may have handed to the mail service
    /// less than [`SendConfig::ack_grace`] ago, without their outcome: they are neither
    /// re-sent nor given up until then. Re-run after `retry_after`.
    #[error(
        "{count} invitations may have reached the mail service already; retry after {retry_after}"
    )]
    Unacknowledged {
        count: usize,
        retry_after: OffsetDateTime,
    },
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Derives registration tokens from a server secret (see the module docs).
pub struct TokenDeriver {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenDeriver").finish_non_exhaustive()
    }
}

/// The token secret is shorter than [`MIN_TOKEN_SECRET_LEN`].
#[derive(Debug, thiserror::Error)]
#[error("the registration token secret must be at least {MIN_TOKEN_SECRET_LEN} bytes")]
pub struct WeakTokenSecret;

impl TokenDeriver {
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, WeakTokenSecret> {
        let key = secret.as_ref().to_vec();
        if key.len() < MIN_TOKEN_SECRET_LEN {
            return Err(WeakTokenSecret);
        }
        Ok(Self { key })
    }

    /// The raw registration token of one invitation (URL-safe, 256 bits).
    pub fn token(&self, tenant: &TenantId, campaign: &CampaignId, contact: &ContactId) -> String {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        // Ids never contain '|', so the encoding is unambiguous.
        mac.update(format!("reg1|{tenant}|{campaign}|{contact}").as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// Spaces sends at most `rate` per second (a token bucket of depth one): each caller
/// reserves the next free slot and sleeps until it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<time::Duration>,
    next: Mutex<Option<OffsetDateTime>>,
}

impl RateLimiter {
    /// `None`, zero or a non-finite rate = unlimited.
    pub fn new(rate: Option<f64>) -> Self {
        let interval = rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| time::Duration::seconds_f64(1.0 / r));
        Self {
            interval,
            next: Mutex::new(None),
        }
    }

    /// How long to wait before the next send, reserving its slot.
    pub fn reserve(&self, now: OffsetDateTime) -> Duration {
        let Some(interval) = self.interval else {
            return Duration::ZERO;
        };
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match *next {
            Some(n) if n > now => n,
            _ => now,
        };
        *next = Some(slot + interval);
        Duration::try_from(slot - now).unwrap_or(Duration::ZERO)
    }
}

/// Exponential back-off for attempt `n` (0-based), capped.
pub(crate) fn backoff(config: &SendConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    config
        .initial_backoff
        .saturating_mul(factor)
        .min(config.max_backoff)
}

/// What [`run_campaign`] (or one [`handle`]) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// The campaign's status afterwards (`None` from [`handle`]).
    pub status: Option<CampaignStatus>,
    pub sent: u64,
    pub failed: u64,
}

/// Moves the campaign by `event` when it is in `from`; `false` if someone moved it first.
async fn transition(
    deps: &SendDeps,
    tenant: &TenantId,
    id: &CampaignId,
    from: CampaignStatus,
    event: CampaignEvent,
    reason: Option<String>,
) -> Result<bool, SendError> {
    let to = from.next(event)?;
    Ok(deps
        .store
        .update_campaign_status(tenant, id, from, to, reason)
        .await?)
}

/// Completes a `sending` campaign none of whose invitations is still in process. Called
/// after every step that can be the last, so whichever finishes last completes it (the
/// status update is conditional: two callers cannot both move it).
async fn complete_if_done(
    deps: &SendDeps,
    tenant: &TenantId,
    id: &CampaignId,
) -> Result<(), SendError> {
    if let Some(c) = deps.store.get_campaign(tenant, id).await? {
        if c.status == CampaignStatus::Sending && c.sends.pending == 0 {
            transition(
                deps,
                tenant,
                id,
                CampaignStatus::Sending,
                CampaignEvent::DeliveriesFinished,
                None,
            )
            .await?;
        }
    }
    Ok(())
}

/// Handles one bus message — the body of the fan-out and delivery functions, and of the
/// local server's in-process worker. Safe to run twice for the same message.
///
/// - `FanOut`: a `queued` campaign becomes `fanning_out`; one page is claimed
///   ([`fan_out_page`]) and its `Deliver` batches are published together with the `FanOut`
///   of the next page; after the last page the campaign becomes `sending` (and `completed`
///   at once if nothing is left in process). A `sending` campaign is paged again (a resume
///   after a crash re-emits the batches of what is still in process); a paused, failed or
///   completed one is left alone.
/// - `Deliver`: [`deliver_batch`], then completion when it was the last.
#[tracing::instrument(skip_all, fields(tenant = %msg.tenant(), campaign = %msg.campaign_id(), kind = msg.detail_type()))]
pub async fn handle(
    deps: &SendDeps,
    bus: &dyn EventBus,
    msg: &SendMessage,
) -> Result<RunReport, SendError> {
    let mut report = RunReport::default();
    match msg {
        SendMessage::FanOut {
            tenant,
            campaign_id,
            cursor,
            spec,
        } => {
            let campaign = deps
                .store
                .get_campaign(tenant, campaign_id)
                .await?
                .ok_or_else(|| SendError::CampaignNotFound(campaign_id.clone()))?;
            let mut status = campaign.status;
            if status == CampaignStatus::Queued {
                transition(
                    deps,
                    tenant,
                    campaign_id,
                    status,
                    CampaignEvent::FanOutStarted,
                    None,
                )
                .await?;
                status = CampaignStatus::FanningOut;
            }
            if !matches!(status, CampaignStatus::FanningOut | CampaignStatus::Sending) {
                return Ok(report);
            }
            // A campaign just moved out of `queued` is read as it now is: fanning out.
            let campaign = Campaign { status, ..campaign };
            let context =
                fan_out::PageContext::of(deps, tenant, &campaign, spec.as_deref()).await?;
            let step =
                fan_out::fan_out_page_of(deps, tenant, &campaign, &context, cursor.as_deref())
                    .await?;
            let delivery_spec = context.spec.as_ref().map(|s| Box::new(s.for_delivery()));
            let mut out: Vec<SendMessage> = step
                .batches
                .into_iter()
                .map(|b| SendMessage::Deliver {
                    tenant: tenant.clone(),
                    campaign_id: b.campaign_id,
                    recipients: b.recipients,
                    spec: delivery_spec.clone(),
                })
                .collect();
            if !step.done {
                out.push(SendMessage::FanOut {
                    tenant: tenant.clone(),
                    campaign_id: campaign_id.clone(),
                    cursor: step.next_cursor,
                    spec: context.spec.map(Box::new),
                });
            }
            bus.publish(&out).await?;
            if step.done {
                if status == CampaignStatus::FanningOut {
                    transition(
                        deps,
                        tenant,
                        campaign_id,
                        status,
                        CampaignEvent::FanOutFinished,
                        None,
                    )
                    .await?;
                }
                complete_if_done(deps, tenant, campaign_id).await?;
            }
        }
        SendMessage::Deliver {
            tenant,
            campaign_id,
            recipients,
            spec,
        } => {
            let r = deliver_batch(deps, tenant, campaign_id, recipients, spec.as_deref()).await?;
            report.sent = r.sent;
            report.failed = r.failed;
            match (r.paused, r.drained) {
                (true, _) => {}
                // This batch's last write resolved the last pending invitation of a campaign
                // whose fan-out is over: complete it unread.
                (false, Some(true)) => {
                    transition(
                        deps,
                        tenant,
                        campaign_id,
                        CampaignStatus::Sending,
                        CampaignEvent::DeliveriesFinished,
                        None,
                    )
                    .await?;
                }
                // Others are still pending (whoever resolves the last one completes it), or
                // the fan-out still runs (its last step completes it).
                (false, Some(false)) => {}
                (false, None) => complete_if_done(deps, tenant, campaign_id).await?,
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ids() -> (TenantId, CampaignId, ContactId) {
        (
            TenantId::parse("t1").unwrap(),
            CampaignId::parse("0".repeat(32)).unwrap(),
            ContactId::parse("c-1").unwrap(),
        )
    }

    #[test]
    fn a_registration_token_is_the_same_on_every_delivery_and_differs_per_invitation() {
        let d = TokenDeriver::new(SECRET).unwrap();
        let (t, c, k) = ids();
        assert_eq!(d.token(&t, &c, &k), d.token(&t, &c, &k));
        assert_ne!(
            d.token(&t, &c, &k),
            d.token(&t, &c, &ContactId::parse("c-2").unwrap())
        );
        assert_ne!(
            d.token(&t, &c, &k),
            d.token(&TenantId::parse("t2").unwrap(), &c, &k)
        );
        let other = TokenDeriver::new([7u8; 32]).unwrap();
        assert_ne!(d.token(&t, &c, &k), other.token(&t, &c, &k));
        assert!(d.token(&t, &c, &k).len() >= 43, "256 bits, base64url");
    }

    #[test]
    fn a_short_token_secret_is_refused() {
        assert!(TokenDeriver::new(b"short").is_err());
    }

    #[test]
    fn back_off_doubles_and_stops_at_the_cap() {
        let cfg = SendConfig::default();
        assert_eq!(backoff(&cfg, 0), Duration::from_millis(200));
        assert_eq!(backoff(&cfg, 1), Duration::from_millis(400));
        assert_eq!(backoff(&cfg, 30), cfg.max_backoff);
    }

    #[test]
    fn the_rate_limiter_reserves_spaced_slots_and_an_unlimited_one_never_waits() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let l = RateLimiter::new(Some(4.0));
        assert_eq!(l.reserve(now), Duration::ZERO);
        assert_eq!(l.reserve(now), Duration::from_millis(250));
        assert_eq!(l.reserve(now + time::Duration::seconds(10)), Duration::ZERO);
        let free = RateLimiter::new(None);
        assert!((0..100).all(|_| free.reserve(now).is_zero()));
        assert!(RateLimiter::new(Some(f64::NAN)).reserve(now).is_zero());
    }
}
