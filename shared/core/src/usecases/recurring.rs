//! Recurring invitations: saving settings (and their schedules), running a setting for a
//! day, previewing the next run, and the runs' history.
//!
//! # A run
//!
//! [`run_setting`] runs one setting for one local day:
//!
//! 1. a setting that is gone or disabled is ignored (a schedule that outlived its setting —
//!    the store and the scheduler disagree until the next save — does nothing);
//! 2. the day is claimed with a conditional write ([`RecurringStore::start_run`]): the
//!    schedule firing twice, a retried function or two runs at once find the day taken;
//! 3. the divisions of the scope are resolved now (`all`: every division today;
//!    `new_divisions_only`: those first synced after the setting was saved);
//! 4. if nobody is due, the run is recorded as done without a campaign;
//! 5. otherwise a campaign (`trigger: recurring`, carrying the [`ReminderRule`]) is created
//!    with an idempotency key made of (setting, day), so a run killed after this step and run
//!    again finds the same campaign, and its fan-out is queued. The fan-out applies the rule
//!    to each contact page (see `send::fan_out`) under every rule of a manual send.
//!
//! A run that died between 2 and 5 is finished by the next call for the same day: the run
//! record says it did not finish, so the steps run again, idempotently. Only the runner that
//! *creates* the day's campaign queues its fan-out (a concurrent runner finds it existing and
//! leaves it); a runner that could not queue it records the campaign in the run, and the next
//! call queues it if its fan-out has not started. A resumed run first looks for the day's
//! campaign in the division's history, so a campaign that went out is never lost from it.
//!
//! # Recurring runs and manual bulk sends on one day
//!
//! A recurring run takes **no** division lock (only manual bulk sends do), and a manual bulk
//! send is not held by a recurring run. What protects residents is the per-contact claim:
//! whichever comes first, a contact gets at most one invitation in any rolling 24 hours; the
//! other send counts it as `held_24h`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{
    classify, AddressTally, Campaign, CampaignId, CampaignStatus, CategoryCounts, Counts,
    DivisionId, DomainError, Email, Filters, Group, LocalDate, PortalStatus, RecurringId,
    RecurringRun, RecurringSetting, ReminderRule, Scope, SendCounts, SendOutcome, SenderCheck,
    Skipped, TemplateId, TemplateKind, TenantId, TimeZoneName, Trigger, MAX_CAMPAIGN_DIVISIONS,
};
use crate::ports::{
    BoxError, Clock, ContactQuery, CreateOutcome, Idempotency, ListQuery, Page, RunRecord,
    SendMessage, StartRun, Store, StoreError, MAX_PAGE_SIZE,
};
use crate::usecases::campaigns::Sending;

/// Where settings' schedules live: EventBridge Scheduler on AWS; nothing on one machine,
/// where the local server's scheduler reads the settings themselves.
#[async_trait]
pub trait Schedules: Send + Sync {
    /// Creates or updates the setting's schedule (disabled when the setting is).
    async fn put(&self, tenant: &TenantId, setting: &RecurringSetting) -> Result<(), BoxError>;
    /// Deletes the setting's schedule; an absent one is fine.
    async fn delete(&self, tenant: &TenantId, id: &RecurringId) -> Result<(), BoxError>;
}

/// No schedules to keep: the local server runs due settings itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalSchedules;

#[async_trait]
impl Schedules for LocalSchedules {
    async fn put(&self, _: &TenantId, _: &RecurringSetting) -> Result<(), BoxError> {
        Ok(())
    }
    async fn delete(&self, _: &TenantId, _: &RecurringId) -> Result<(), BoxError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecurringError {
    /// 422.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// 404.
    #[error("recurring setting {0} does not exist")]
    NotFound(RecurringId),
    /// 503: the setting is saved but its schedule could not be written; saving again (the
    /// same request) finishes it.
    #[error(
        "the setting was saved but its schedule could not be updated; send the same request again"
    )]
    Schedule(#[source] BoxError),
    /// 503: the run's campaign is recorded but its fan-out could not be queued; running again
    /// queues it.
    #[error("the run's campaign {0} could not be queued; it is queued again on the next try")]
    NotQueued(CampaignId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unexpected store answer: {0}")]
    Unexpected(String),
}

/// A setting as a manager sends it, before checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingInput {
    pub enabled: bool,
    pub scope: String,
    pub division_ids: Vec<DivisionId>,
    pub filters: Filters,
    pub template_id: TemplateId,
    pub email_from: Option<Email>,
    pub cadence_days: u16,
    pub max_invitations_per_contact: u16,
    pub hour_of_day: u8,
    pub time_zone: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RecurringError {
    RecurringError::Invalid(DomainError::InvalidField {
        field,
        reason: reason.into(),
    })
}

/// `PUT /v1/recurring/{id}`: checks, saves (keeping the first save's time: it decides which
/// divisions are "new"), then creates or updates the schedule. Idempotent.
pub async fn save_setting(
    store: &dyn Store,
    schedules: &dyn Schedules,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: RecurringId,
    input: SettingInput,
) -> Result<RecurringSetting, RecurringError> {
    let rule = ReminderRule {
        cadence_days: input.cadence_days,
        max_invitations_per_contact: input.max_invitations_per_contact,
    };
    RecurringSetting::check(rule, input.hour_of_day)?;
    let time_zone = TimeZoneName::parse(&input.time_zone)?;
    // The same limits as a count's or a send's filters: a setting's runs use them.
    let filters = input.filters.validate()?;
    let scope = match input.scope.as_str() {
        "all" | "new_divisions_only" if !input.division_ids.is_empty() => {
            return Err(invalid(
                "division_ids",
                "only the scope `divisions` takes division_ids",
            ))
        }
        "all" => Scope::All,
        "new_divisions_only" => Scope::NewDivisionsOnly,
        "divisions" => {
            if input.division_ids.is_empty() {
                return Err(invalid(
                    "division_ids",
                    "the scope `divisions` needs at least one division",
                ));
            }
            let known = store.list_divisions(tenant).await?;
            let mut ids = input.division_ids.clone();
            ids.sort();
            ids.dedup();
            if let Some(missing) = ids
                .iter()
                .find(|d| !known.iter().any(|k| &k.division_id == *d))
            {
                return Err(invalid(
                    "division_ids",
                    format!("division {missing} does not exist"),
                ));
            }
            Scope::Divisions(ids)
        }
        other => {
            return Err(invalid(
                "scope",
                format!("{other:?} is not one of all, new_divisions_only, divisions"),
            ))
        }
    };
    match store.get_template(tenant, &input.template_id).await? {
        Some(t) if t.kind() == TemplateKind::Invitation => {}
        Some(_) => {
            return Err(invalid(
                "template_id",
                format!(
                    "template {} is not an invitation template",
                    input.template_id
                ),
            ))
        }
        None => {
            return Err(invalid(
                "template_id",
                format!("template {} does not exist", input.template_id),
            ))
        }
    }
    if let Some(sender) = &input.email_from {
        let senders = store.get_sender_settings(tenant).await?;
        if !SenderCheck::of(senders.as_ref(), sender).is_allowed() {
            return Err(invalid(
                "email_from",
                format!(
                    "{sender} is not an allowed sender for this tenant; send from an address \
                     the sender settings allow (GET /v1/settings/senders), or add it there"
                ),
            ));
        }
    }
    let now = clock.now();
    let created_at = store
        .get_setting(tenant, &id)
        .await?
        .map_or(now, |s| s.created_at);
    let setting = RecurringSetting {
        setting_id: id,
        enabled: input.enabled,
        scope,
        filters,
        template_id: input.template_id,
        email_from: input.email_from,
        rule,
        hour_of_day: input.hour_of_day,
        time_zone,
        created_at,
        updated_at: now,
    };
    store.put_setting(tenant, &setting).await?;
    schedules
        .put(tenant, &setting)
        .await
        .map_err(RecurringError::Schedule)?;
    tracing::info!(%tenant, setting = %setting.setting_id, enabled = setting.enabled, "recurring setting saved");
    Ok(setting)
}

/// `DELETE /v1/recurring/{id}`: the setting, then its schedule. Its runs stay.
pub async fn delete_setting(
    store: &dyn Store,
    schedules: &dyn Schedules,
    tenant: &TenantId,
    id: &RecurringId,
) -> Result<(), RecurringError> {
    if !store.delete_setting(tenant, id).await? {
        return Err(RecurringError::NotFound(id.clone()));
    }
    schedules
        .delete(tenant, id)
        .await
        .map_err(RecurringError::Schedule)?;
    Ok(())
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The setting is gone or disabled: nothing was done.
    Ignored { reason: String },
    /// No run is due at this time (before the first day's hour).
    NotDue,
    /// The day had already run: nothing was done again.
    AlreadyRan { run: RunRecord },
    /// Nobody was due: the run is recorded without a campaign.
    NobodyDue { run: RunRecord },
    /// The run's campaign is queued.
    Queued { run: RunRecord },
    /// The run's sender (the setting's, or its first division's) is not one the tenant's
    /// sender settings allow: the day is recorded without a campaign, nothing was sent.
    SenderNotAllowed { run: RunRecord, sender: Email },
}

/// Runs `setting` for `day` (`None`: the day due now). See the module docs.
#[tracing::instrument(skip_all, fields(tenant = %tenant, setting = %id))]
pub async fn run_setting(
    store: &dyn Store,
    clock: &dyn Clock,
    sending: &Sending,
    tenant: &TenantId,
    id: &RecurringId,
    day: Option<LocalDate>,
) -> Result<RunOutcome, RecurringError> {
    let Some(setting) = store.get_setting(tenant, id).await? else {
        return Ok(RunOutcome::Ignored {
            reason: format!("recurring setting {id} does not exist"),
        });
    };
    if !setting.enabled {
        return Ok(RunOutcome::Ignored {
            reason: format!("recurring setting {id} is disabled"),
        });
    }
    let now = clock.now();
    let Some(day) = day.or_else(|| setting.due_day(now)) else {
        return Ok(RunOutcome::NotDue);
    };
    let local_date = day.to_string();
    let (mut run, resumed) = match store.start_run(tenant, id, &local_date, now).await? {
        StartRun::Started => (
            RunRecord {
                setting_id: id.clone(),
                local_date: local_date.clone(),
                started_at: now,
                campaign_id: None,
                finished: false,
            },
            false,
        ),
        StartRun::Already(run) if run.finished => return Ok(RunOutcome::AlreadyRan { run }),
        // Another runner of this day, or one that died or failed half-way.
        StartRun::Already(run) => (run, true),
    };

    if resumed {
        // A runner that made the day's campaign but could not queue it recorded the
        // campaign: queue it now if its fan-out never started, and finish.
        if let Some(campaign_id) = run.campaign_id.clone() {
            let campaign = store.get_campaign(tenant, &campaign_id).await?;
            if campaign.is_some_and(|c| c.status == CampaignStatus::Queued) {
                publish(sending, tenant, &campaign_id).await?;
            }
            run.finished = true;
            store.finish_run(tenant, &run).await?;
            return Ok(RunOutcome::Queued { run });
        }
    }

    let divisions = resolve_divisions(store, tenant, &setting).await?;
    if resumed {
        // The day's campaign may already have gone out (its runner died before recording
        // it): the history must keep it, and nobody is "due" any more.
        if let Some(first) = divisions.first() {
            if let Some(campaign_id) =
                find_run_campaign(store, tenant, first, id, &local_date).await?
            {
                run.campaign_id = Some(campaign_id);
                run.finished = true;
                store.finish_run(tenant, &run).await?;
                return Ok(RunOutcome::Queued { run });
            }
        }
    }
    if divisions.is_empty() || !anyone_due(store, tenant, &setting, &divisions, now).await? {
        run.finished = true;
        store.finish_run(tenant, &run).await?;
        tracing::info!(%tenant, setting = %id, day = %local_date, "recurring run: nobody due");
        return Ok(RunOutcome::NobodyDue { run });
    }

    let email_from = match &setting.email_from {
        Some(e) => e.clone(),
        None => store
            .get_division(tenant, &divisions[0])
            .await?
            .map(|d| d.email_from)
            .ok_or_else(|| {
                RecurringError::Unexpected(format!("division {} vanished", divisions[0]))
            })?,
    };
    let senders = store.get_sender_settings(tenant).await?;
    if !SenderCheck::of(senders.as_ref(), &email_from).is_allowed() {
        run.finished = true;
        store.finish_run(tenant, &run).await?;
        tracing::warn!(%tenant, setting = %id, day = %local_date, sender = %email_from,
            "recurring run: the sender is not allowed by the tenant's sender settings; nothing sent");
        return Ok(RunOutcome::SenderNotAllowed {
            run,
            sender: email_from,
        });
    }
    let mut campaign_ids = Vec::new();
    // A campaign holds at most MAX_CAMPAIGN_DIVISIONS divisions: a wider scope runs as
    // several campaigns, each keyed by its chunk.
    for (chunk_no, chunk) in divisions.chunks(MAX_CAMPAIGN_DIVISIONS).enumerate() {
        let campaign = Campaign {
            campaign_id: CampaignId::generate(now),
            trigger: Trigger::Recurring,
            status: CampaignStatus::Queued,
            division_ids: chunk.to_vec(),
            filters: setting.filters.clone(),
            limit_to_uninvited: false,
            template_id: setting.template_id.to_string(),
            email_from: email_from.clone(),
            display_name: senders.as_ref().and_then(|s| s.display_name.clone()),
            created_at: now,
            created_by: format!("recurring:{id}"),
            targeted: 0,
            skipped: Skipped::default(),
            categories: CategoryCounts::default(),
            sends: SendCounts::default(),
            pause_reason: None,
            recurring: Some(RecurringRun {
                setting_id: id.clone(),
                local_date: local_date.clone(),
                rule: setting.rule,
            }),
            selection: None,
        };
        let key = format!("recurring:{id}:{local_date}:{chunk_no}");
        let idem = Idempotency {
            body_hash: crate::domain::hash_token(&key),
            key,
        };
        match store
            .create_campaign(tenant, &campaign, Some(&idem), now)
            .await?
        {
            CreateOutcome::Created => {
                // Only the runner that made a campaign queues it: a concurrent runner of the
                // same day finds it `Existing` below and leaves it to its maker, so a day's
                // fan-out is queued once.
                if let Err(e) = publish(sending, tenant, &campaign.campaign_id).await {
                    run.campaign_id = Some(campaign.campaign_id.clone());
                    store.finish_run(tenant, &run).await?;
                    return Err(e);
                }
                campaign_ids.push(campaign.campaign_id.clone());
            }
            CreateOutcome::Existing(c) => campaign_ids.push(c.campaign_id),
            other => {
                return Err(RecurringError::Unexpected(format!(
                    "{other:?} for a recurring campaign"
                )))
            }
        }
    }
    run.campaign_id = campaign_ids.first().cloned();
    run.finished = true;
    store.finish_run(tenant, &run).await?;
    tracing::info!(%tenant, setting = %id, day = %local_date, campaigns = campaign_ids.len(), "recurring run queued");
    Ok(RunOutcome::Queued { run })
}

/// Queues a campaign's first fan-out step.
async fn publish(
    sending: &Sending,
    tenant: &TenantId,
    campaign_id: &CampaignId,
) -> Result<(), RecurringError> {
    sending
        .bus
        .publish(&[SendMessage::FanOut {
            tenant: tenant.clone(),
            campaign_id: campaign_id.clone(),
            cursor: None,
            spec: None,
        }])
        .await
        .map_err(|e| {
            tracing::error!(%tenant, %campaign_id, error = %crate::error_chain(&e), "recurring fan-out not queued");
            RecurringError::NotQueued(campaign_id.clone())
        })
}

/// The campaign a run of (setting, day) made, found in a division's history.
async fn find_run_campaign(
    store: &dyn Store,
    tenant: &TenantId,
    division: &DivisionId,
    id: &RecurringId,
    local_date: &str,
) -> Result<Option<CampaignId>, StoreError> {
    let page = store.list_campaigns(tenant, division, None, 50).await?;
    Ok(page.items.into_iter().find_map(|c| {
        c.recurring
            .filter(|r| &r.setting_id == id && r.local_date == local_date)
            .map(|_| c.campaign_id)
    }))
}

/// Runs every enabled setting of every tenant that is due at `now`: the local server's
/// scheduler tick (and `portal-invites run-recurring`). Errors of one setting are logged and
/// do not stop the others.
pub async fn run_due(
    store: &dyn Store,
    clock: &dyn Clock,
    sending: &Sending,
) -> Result<Vec<(TenantId, RecurringId, RunOutcome)>, RecurringError> {
    let now = clock.now();
    let mut out = Vec::new();
    for (tenant, setting) in store.enabled_settings().await? {
        let Some(day) = setting.due_day(now) else {
            continue;
        };
        match run_setting(
            store,
            clock,
            sending,
            &tenant,
            &setting.setting_id,
            Some(day),
        )
        .await
        {
            Ok(outcome) => out.push((tenant, setting.setting_id, outcome)),
            Err(e) => {
                tracing::error!(%tenant, setting = %setting.setting_id, error = %crate::error_chain(&e), "recurring run failed");
            }
        }
    }
    Ok(out)
}

/// The divisions a setting covers now, in id order.
pub async fn resolve_divisions(
    store: &dyn Store,
    tenant: &TenantId,
    setting: &RecurringSetting,
) -> Result<Vec<DivisionId>, StoreError> {
    let all = store.list_divisions(tenant).await?;
    Ok(match &setting.scope {
        Scope::All => all.into_iter().map(|d| d.division_id).collect(),
        Scope::NewDivisionsOnly => all
            .into_iter()
            .filter(|d| d.first_synced_at.is_some_and(|t| t > setting.created_at))
            .map(|d| d.division_id)
            .collect(),
        Scope::Divisions(ids) => all
            .into_iter()
            .filter(|d| ids.contains(&d.division_id))
            .map(|d| d.division_id)
            .collect(),
    })
}

/// Walks the covered contacts page by page, giving each its outcome for this setting.
async fn walk(
    store: &dyn Store,
    tenant: &TenantId,
    setting: &RecurringSetting,
    divisions: &[DivisionId],
    now: OffsetDateTime,
    mut visit: impl FnMut(&crate::domain::ContactRecord, SendOutcome) -> bool,
) -> Result<(), StoreError> {
    for chunk in divisions.chunks(MAX_CAMPAIGN_DIVISIONS) {
        let mut cursor = None;
        loop {
            let page: Page<_> = store
                .list_contacts(
                    tenant,
                    &ListQuery {
                        contacts: ContactQuery {
                            division_ids: chunk.to_vec(),
                            filters: setting.filters.clone(),
                            limit_to_uninvited: false,
                            now,
                        },
                        group: Group::All,
                        search: String::new(),
                        cursor,
                        limit: MAX_PAGE_SIZE,
                        max_examined: None,
                    },
                )
                .await?;
            let emails: Vec<_> = page.items.iter().filter_map(|c| c.email.clone()).collect();
            let suppressed = store.suppressed_among(tenant, &emails).await?;
            for c in &page.items {
                let outcome =
                    if c.portal_status != PortalStatus::Accepted && !setting.rule.targets(c, now) {
                        SendOutcome::NotTargeted
                    } else {
                        let s = c
                            .email
                            .as_ref()
                            .is_some_and(|e| suppressed.contains(&e.normalized()));
                        classify(c, now, s, false)
                    };
                if !visit(c, outcome) {
                    return Ok(());
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

/// Whether a run now would invite anyone (stops at the first one).
async fn anyone_due(
    store: &dyn Store,
    tenant: &TenantId,
    setting: &RecurringSetting,
    divisions: &[DivisionId],
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut found = false;
    walk(store, tenant, setting, divisions, now, |_, outcome| {
        found = outcome == SendOutcome::Eligible;
        !found
    })
    .await?;
    Ok(found)
}

/// `POST /v1/recurring/{id}/preview`: who the next run would target now, in the counts of
/// `/v1/invitations/counts` (`eligible` are the invitations it would send; pending contacts
/// not yet due again count in `pending` only). Creates nothing.
pub async fn preview(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantId,
    id: &RecurringId,
) -> Result<(Vec<DivisionId>, Counts), RecurringError> {
    let setting = store
        .get_setting(tenant, id)
        .await?
        .ok_or_else(|| RecurringError::NotFound(id.clone()))?;
    let divisions = resolve_divisions(store, tenant, &setting).await?;
    let mut counts = Counts::default();
    let mut addresses = AddressTally::default();
    let now = clock.now();
    walk(store, tenant, &setting, &divisions, now, |c, outcome| {
        counts.add(c, outcome);
        addresses.add(c, outcome, now);
        true
    })
    .await?;
    counts.duplicate_address = addresses.duplicates();
    Ok((divisions, counts))
}

/// One run as the history shows it: the record, with its campaign's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunRecord,
    pub targeted: u64,
    pub skipped: Skipped,
}

/// `GET /v1/recurring/{id}/runs`: newest day first.
pub async fn runs(
    store: &dyn Store,
    tenant: &TenantId,
    id: &RecurringId,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<RunView>, RecurringError> {
    let page = store.list_runs(tenant, id, cursor, limit).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for run in page.items {
        let (targeted, skipped) = match &run.campaign_id {
            Some(c) => store
                .get_campaign(tenant, c)
                .await?
                .map_or((0, Skipped::default()), |c| (c.targeted, c.skipped)),
            None => (0, Skipped::default()),
        };
        items.push(RunView {
            run,
            targeted,
            skipped,
        });
    }
    Ok(Page {
        items,
        next_cursor: page.next_cursor,
    })
}

/// A shared handle on the schedules port.
pub type SharedSchedules = Arc<dyn Schedules>;
