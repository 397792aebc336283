//! [`RecurringStore`] on DynamoDB: recurring settings, and one item per run keyed by
//! (tenant, setting, local date) whose conditional creation makes a day run at most once.
//!
//! # Items
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | setting | `T#{t}` | `REC#{setting}` | `enabled` (Bool), `scope` (`all`, `new_divisions_only`, `divisions`), `divs` (list, scope `divisions` only), `filters` (JSON), `tpl`, `from`?, `cadence`, `max`, `hour` (N), `tz` (the IANA name), `at`, `upd`; when enabled `gsi1pk` = `REC#ENABLED`, `gsi1sk` = `T#{t}#{setting}` |
//! | run | `T#{t}#RUN#{setting}` | `{local date}` (`YYYY-MM-DD`) | `started`, `cmp`?, `done` (Bool) |
//!
//! A setting shares its tenant's partition with the divisions and templates (`REC#`, `DIV#`
//! and `TPL#` never prefix each other), so the tenant's settings are one `begins_with` Query
//! in id order. The time zone is stored by name and parsed again with
//! [`TimeZoneName::parse`] on every read.
//!
//! **Every tenant's enabled settings** (what the scheduler of one machine wakes for) come
//! from the sparse, overloaded `gsi1`: only an *enabled* setting carries `gsi1pk =
//! REC#ENABLED`, so the index holds exactly the enabled settings of every tenant, in (tenant,
//! id) order, and a Query of that one index partition reads nothing else — no Scan. Saving a
//! setting rewrites the whole item, so disabling one drops it from the index. The index is
//! eventually consistent: a setting saved a moment ago may be missed by one tick and is seen
//! on the next one, and one disabled a moment ago may be listed once more, which is harmless
//! since a run reads its setting again (strongly consistent) and ignores a disabled one. One
//! index partition is ample for what it holds (settings are a handful per tenant, written
//! when a manager saves one). On AWS nothing reads it in the
//! normal course: EventBridge Scheduler holds one schedule per setting instead.
//!
//! **Runs.** A run's partition is its setting's, its sort key the local date, so a setting's
//! history is one Query backwards (newest day first). `start_run` is a PutItem under
//! `attribute_not_exists(pk)`: whichever firing, retry or concurrent run writes it first
//! goes on; every other one gets `ConditionalCheckFailed` with the stored record (`ALL_OLD`
//! on the failed condition) and answers `Already`. Runs outlive their setting (history): a
//! setting deleted and saved again under the same id finds its old days taken.
//!
//! | operation | requests |
//! |---|---|
//! | `put_setting` | PutItem (replaces the whole item, index keys included) |
//! | `get_setting` | GetItem, strongly consistent |
//! | `list_settings` | Query `pk = T#{t}`, `sk begins_with REC#`, strongly consistent (id order) |
//! | `delete_setting` | DeleteItem `ReturnValues = ALL_OLD` (tells a missing one apart) |
//! | `enabled_settings` | Query `gsi1` `gsi1pk = REC#ENABLED` (every page) |
//! | `start_run` | PutItem `attribute_not_exists(pk)`, `ReturnValuesOnConditionCheckFailure = ALL_OLD` (a GetItem only if an emulator leaves the old item out) |
//! | `finish_run` | UpdateItem `SET done, cmp` (or `REMOVE cmp`), `started = if_not_exists(..)` |
//! | `list_runs` | Query the run partition backwards from the cursor, `Limit = limit + 1` |
//!
//! `start_run`'s PutItem goes through `transaction_guard` like a transaction: moto checks a
//! condition and writes without isolation, so on an emulator two concurrent firings could
//! both pass it; DynamoDB evaluates a condition atomically with its write.
//!
//! A run list cursor is URL-safe base64 of `{"v":1,"s":setting,"d":date}`: a position only
//! (the partition is rebuilt from the caller's tenant and setting), refused by another
//! setting's list; anything that does not parse is [`StoreError::InvalidCursor`].

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use time::OffsetDateTime;

use portal_core::domain::{
    CampaignId, DivisionId, Email, Filters, RecurringId, RecurringSetting, ReminderRule, Scope,
    TemplateId, TenantId, TimeZoneName,
};
use portal_core::ports::{Page, RecurringStore, RunRecord, StartRun, StoreError, MAX_PAGE_SIZE};

use super::items::{
    self, get_num, get_str, malformed, num, req_str, req_time, s, time_value, Item,
};
use super::table::GSI1;
use super::{keys, ops, DynamoStore};

// Setting item.
const ENABLED: &str = "enabled";
const SCOPE: &str = "scope";
const DIVISIONS: &str = "divs";
const FILTERS: &str = "filters";
const TEMPLATE: &str = "tpl";
const FROM: &str = "from";
const CADENCE: &str = "cadence";
const MAX: &str = "max";
const HOUR: &str = "hour";
const TIME_ZONE: &str = "tz";
const CREATED_AT: &str = "at";
const UPDATED_AT: &str = "upd";
// Run item.
const STARTED_AT: &str = "started";
const CAMPAIGN: &str = "cmp";
const DONE: &str = "done";

fn encode_setting(t: &TenantId, r: &RecurringSetting) -> Result<Item, StoreError> {
    let filters =
        serde_json::to_string(&r.filters).map_err(|e| StoreError::backend("encode item", e))?;
    let mut item = items::key(keys::tenant_pk(t), keys::setting_sk(&r.setting_id));
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put(ENABLED, AttributeValue::Bool(r.enabled));
    put(SCOPE, s(r.scope.as_str()));
    if let Scope::Divisions(ids) = &r.scope {
        put(
            DIVISIONS,
            AttributeValue::L(ids.iter().map(|d| s(d.as_str())).collect()),
        );
    }
    put(FILTERS, s(filters));
    put(TEMPLATE, s(r.template_id.as_str()));
    if let Some(e) = &r.email_from {
        put(FROM, s(e.as_str()));
    }
    put(CADENCE, num(u64::from(r.rule.cadence_days)));
    put(MAX, num(u64::from(r.rule.max_invitations_per_contact)));
    put(HOUR, num(u64::from(r.hour_of_day)));
    put(TIME_ZONE, s(r.time_zone.as_str()));
    put(CREATED_AT, time_value(r.created_at)?);
    put(UPDATED_AT, time_value(r.updated_at)?);
    if r.enabled {
        put(items::GSI1PK, s(keys::ENABLED_SETTINGS_GSI_PK));
        put(
            items::GSI1SK,
            s(keys::enabled_setting_gsi_sk(t, &r.setting_id)),
        );
    }
    Ok(item)
}

fn small<T: TryFrom<u64>>(item: &Item, name: &str) -> Result<T, StoreError> {
    T::try_from(get_num(item, name)?).map_err(|_| malformed(name))
}

fn decode_setting(item: &Item) -> Result<RecurringSetting, StoreError> {
    let id = req_str(item, items::SK)?
        .strip_prefix(keys::SETTING_SK_PREFIX)
        .ok_or_else(|| malformed("setting sort key"))?;
    let scope = match req_str(item, SCOPE)? {
        "all" => Scope::All,
        "new_divisions_only" => Scope::NewDivisionsOnly,
        "divisions" => match item.get(DIVISIONS) {
            Some(AttributeValue::L(l)) => Scope::Divisions(
                l.iter()
                    .map(|v| match v {
                        AttributeValue::S(d) => {
                            DivisionId::parse(d.as_str()).map_err(|_| malformed(DIVISIONS))
                        }
                        _ => Err(malformed(DIVISIONS)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(malformed(DIVISIONS)),
        },
        _ => return Err(malformed(SCOPE)),
    };
    let filters: Filters =
        serde_json::from_str(req_str(item, FILTERS)?).map_err(|_| malformed(FILTERS))?;
    Ok(RecurringSetting {
        setting_id: RecurringId::parse(id).map_err(|_| malformed("setting id"))?,
        enabled: matches!(item.get(ENABLED), Some(AttributeValue::Bool(true))),
        scope,
        filters,
        template_id: TemplateId::parse(req_str(item, TEMPLATE)?)
            .map_err(|_| malformed(TEMPLATE))?,
        email_from: get_str(item, FROM)
            .map(|e| Email::parse(e).map_err(|_| malformed(FROM)))
            .transpose()?,
        rule: ReminderRule {
            cadence_days: small(item, CADENCE)?,
            max_invitations_per_contact: small(item, MAX)?,
        },
        hour_of_day: small(item, HOUR)?,
        time_zone: TimeZoneName::parse(req_str(item, TIME_ZONE)?)
            .map_err(|_| malformed(TIME_ZONE))?,
        created_at: req_time(item, CREATED_AT)?,
        updated_at: req_time(item, UPDATED_AT)?,
    })
}

fn decode_run(setting: &RecurringId, item: &Item) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        setting_id: setting.clone(),
        local_date: req_str(item, items::SK)?.to_owned(),
        started_at: req_time(item, STARTED_AT)?,
        campaign_id: get_str(item, CAMPAIGN)
            .map(|c| CampaignId::parse(c).map_err(|_| malformed(CAMPAIGN)))
            .transpose()?,
        finished: matches!(item.get(DONE), Some(AttributeValue::Bool(true))),
    })
}

#[async_trait]
impl RecurringStore for DynamoStore {
    async fn put_setting(
        &self,
        tenant: &TenantId,
        setting: &RecurringSetting,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode_setting(tenant, setting)?))
            .send()
            .await
            .map_err(|e| StoreError::backend("PutItem", e))?;
        Ok(())
    }

    async fn get_setting(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<Option<RecurringSetting>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::tenant_pk(tenant), keys::setting_sk(id)),
        )
        .await?
        .map(|i| decode_setting(&i))
        .transpose()
    }

    async fn list_settings(&self, tenant: &TenantId) -> Result<Vec<RecurringSetting>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s(keys::SETTING_SK_PREFIX))
            .consistent_read(true);
        let mut out = Vec::new();
        ops::query_all(query, |item| {
            out.push(decode_setting(item)?);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn delete_setting(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                keys::setting_sk(id),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::backend("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn enabled_settings(&self) -> Result<Vec<(TenantId, RecurringSetting)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#gpk = :gpk")
            .expression_attribute_names("#gpk", items::GSI1PK)
            .expression_attribute_values(":gpk", s(keys::ENABLED_SETTINGS_GSI_PK));
        let mut out = Vec::new();
        ops::query_all(query, |item| {
            let tenant = keys::tenant_of_pk(req_str(item, items::PK)?)
                .and_then(|t| TenantId::parse(t).ok())
                .ok_or_else(|| malformed("setting partition key"))?;
            let setting = decode_setting(item)?;
            // Only enabled settings carry the index keys; this guards a hand-edited item. (A
            // setting disabled a moment ago can still be listed from the lagging index: the
            // run reads it again, strongly consistent, and ignores it.)
            if setting.enabled {
                out.push((tenant, setting));
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn start_run(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        local_date: &str,
        now: OffsetDateTime,
    ) -> Result<StartRun, StoreError> {
        let key = items::key(keys::runs_pk(tenant, setting), local_date);
        let mut item = key.clone();
        item.insert(STARTED_AT.into(), time_value(now)?);
        item.insert(DONE.into(), AttributeValue::Bool(false));
        let sent = {
            let _one_at_a_time = self.transaction_guard().await;
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await
        };
        let err = match sent {
            Ok(_) => return Ok(StartRun::Started),
            Err(e) if ops::condition_failed(&e) => e,
            Err(e) => return Err(StoreError::backend("PutItem", e)),
        };
        let old = match err.into_service_error() {
            PutItemError::ConditionalCheckFailedException(c) => c.item,
            _ => None,
        };
        let old = match old {
            Some(old) if !old.is_empty() => old,
            // Runs are never deleted: the record that failed the condition is there.
            _ => self
                .get_item("GetItem", key)
                .await?
                .ok_or_else(|| malformed("a run failed its condition but is missing"))?,
        };
        Ok(StartRun::Already(decode_run(setting, &old)?))
    }

    async fn finish_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<(), StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                keys::runs_pk(tenant, &run.setting_id),
                run.local_date.as_str(),
            )))
            .expression_attribute_names("#done", DONE)
            .expression_attribute_names("#at", STARTED_AT)
            .expression_attribute_names("#cmp", CAMPAIGN)
            .expression_attribute_values(":done", AttributeValue::Bool(run.finished))
            .expression_attribute_values(":at", time_value(run.started_at)?);
        let request = match &run.campaign_id {
            Some(c) => request
                .update_expression("SET #done = :done, #at = if_not_exists(#at, :at), #cmp = :cmp")
                .expression_attribute_values(":cmp", s(c.as_str())),
            None => request
                .update_expression("SET #done = :done, #at = if_not_exists(#at, :at) REMOVE #cmp"),
        };
        request
            .send()
            .await
            .map_err(|e| StoreError::backend("UpdateItem", e))?;
        Ok(())
    }

    async fn list_runs(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RunRecord>, StoreError> {
        let before = cursor
            .map(|c| keys::decode_run_cursor(c, setting))
            .transpose()?;
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let want = limit + 1;
        let mut found: Vec<RunRecord> = Vec::with_capacity(want);
        let mut start: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(keys::runs_pk(tenant, setting)))
                .scan_index_forward(false)
                .limit((want - found.len()) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            request = match &before {
                Some(d) => request
                    .key_condition_expression("pk = :pk AND sk < :before")
                    .expression_attribute_values(":before", s(d.as_str())),
                None => request.key_condition_expression("pk = :pk"),
            };
            let page = request
                .send()
                .await
                .map_err(|e| StoreError::backend("Query", e))?;
            for item in page.items() {
                found.push(decode_run(setting, item)?);
            }
            start = page.last_evaluated_key;
            if found.len() >= want || start.is_none() {
                break;
            }
        }
        let next_cursor = if found.len() > limit {
            found.truncate(limit);
            found
                .last()
                .map(|r| keys::encode_run_cursor(setting, &r.local_date))
        } else {
            None
        };
        Ok(Page {
            items: found,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn setting(enabled: bool, scope: Scope, email_from: Option<&str>) -> RecurringSetting {
        RecurringSetting {
            setting_id: RecurringId::parse("weekly").unwrap(),
            enabled,
            scope,
            filters: Filters {
                account_class: vec!["Residential".into()],
                balance_due: true,
                ..Filters::default()
            },
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: email_from.map(|e| Email::parse(e).unwrap()),
            rule: ReminderRule {
                cadence_days: 7,
                max_invitations_per_contact: 3,
            },
            hour_of_day: 23,
            time_zone: TimeZoneName::parse("Pacific/Auckland").unwrap(),
            created_at: datetime!(2026-11-02 12:00:00.123456789 UTC),
            updated_at: datetime!(2026-11-03 08:30:00 UTC),
        }
    }

    #[test]
    fn settings_round_trip_and_only_enabled_ones_carry_the_index_keys() {
        let t = TenantId::parse("t1").unwrap();
        for s in [
            setting(true, Scope::All, None),
            setting(false, Scope::NewDivisionsOnly, Some("hoa@example.org")),
            setting(
                true,
                Scope::Divisions(vec![
                    DivisionId::parse("d1").unwrap(),
                    DivisionId::parse("d2").unwrap(),
                ]),
                Some("hoa@example.org"),
            ),
        ] {
            let item = encode_setting(&t, &s).unwrap();
            assert_eq!(decode_setting(&item).unwrap(), s);
            assert_eq!(
                get_str(&item, items::GSI1PK),
                s.enabled.then_some(keys::ENABLED_SETTINGS_GSI_PK)
            );
        }
    }
}
