//! [`RecurringStore`] on SQLite: settings as their JSON document in `recurring_settings`,
//! runs in `recurring_runs` whose primary key (tenant, setting, local date) is the
//! once-a-day guarantee (`INSERT … ON CONFLICT DO NOTHING`).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};
use time::OffsetDateTime;

use portal_core::domain::{CampaignId, RecurringId, RecurringSetting, SettingDoc, TenantId};
use portal_core::ports::{Page, RecurringStore, RunRecord, StartRun, StoreError, MAX_PAGE_SIZE};

use super::{from_ts, parse_stored, ts, OrStore, SqliteStore};

fn read_setting(op: &'static str, body: &str) -> Result<RecurringSetting, StoreError> {
    let doc: SettingDoc = parse_stored(op, "recurring setting", serde_json::from_str(body))?;
    parse_stored(op, "recurring setting", doc.into_setting())
}

const RUN_COLUMNS: &str = "setting_id, local_date, started_at, campaign_id, finished";

fn read_run(op: &'static str, row: &Row<'_>) -> Result<RunRecord, StoreError> {
    let id: String = row.get(0).or_store(op)?;
    let campaign: Option<String> = row.get(3).or_store(op)?;
    Ok(RunRecord {
        setting_id: parse_stored(op, "setting_id", RecurringId::parse(id))?,
        local_date: row.get(1).or_store(op)?,
        started_at: from_ts(op, Some(row.get(2).or_store(op)?))?
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        campaign_id: campaign
            .map(|c| parse_stored(op, "campaign_id", CampaignId::parse(c)))
            .transpose()?,
        finished: row.get::<_, i64>(4).or_store(op)? != 0,
    })
}

fn encode_run_cursor(after: &str) -> String {
    portal_core::ports::cursor::encode("run1", after)
}

fn decode_run_cursor(raw: &str) -> Result<String, StoreError> {
    portal_core::ports::cursor::decode("run1", raw)
        .filter(|date| portal_core::domain::LocalDate::parse(date).is_ok())
        .ok_or_else(|| StoreError::InvalidCursor("the cursor was not made by this list".into()))
}

#[async_trait]
impl RecurringStore for SqliteStore {
    async fn put_setting(
        &self,
        tenant: &TenantId,
        setting: &RecurringSetting,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_setting";
        let body =
            serde_json::to_string(&setting.to_doc()).map_err(|e| StoreError::backend(OP, e))?;
        let (tenant, id, enabled) = (tenant.clone(), setting.setting_id.clone(), setting.enabled);
        self.write(OP, move |conn| {
            conn.execute(
                "INSERT INTO recurring_settings (tenant, setting_id, enabled, body) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant, setting_id) \
                 DO UPDATE SET enabled = excluded.enabled, body = excluded.body",
                params![tenant.as_str(), id.as_str(), i64::from(enabled), body],
            )
            .or_store(OP)?;
            Ok(())
        })
        .await
    }

    async fn get_setting(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<Option<RecurringSetting>, StoreError> {
        const OP: &str = "get_setting";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(OP, move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM recurring_settings WHERE tenant = ?1 AND setting_id = ?2",
                    params![tenant.as_str(), id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .or_store(OP)?;
            body.map(|b| read_setting(OP, &b)).transpose()
        })
        .await
    }

    async fn list_settings(&self, tenant: &TenantId) -> Result<Vec<RecurringSetting>, StoreError> {
        const OP: &str = "list_settings";
        let tenant = tenant.clone();
        self.read(OP, move |conn| {
            let bodies: Vec<String> = conn
                .prepare_cached(
                    "SELECT body FROM recurring_settings WHERE tenant = ?1 ORDER BY setting_id",
                )
                .and_then(|mut s| {
                    s.query_map(params![tenant.as_str()], |r| r.get(0))?
                        .collect()
                })
                .or_store(OP)?;
            bodies.iter().map(|b| read_setting(OP, b)).collect()
        })
        .await
    }

    async fn delete_setting(
        &self,
        tenant: &TenantId,
        id: &RecurringId,
    ) -> Result<bool, StoreError> {
        const OP: &str = "delete_setting";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(OP, move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM recurring_settings WHERE tenant = ?1 AND setting_id = ?2",
                    params![tenant.as_str(), id.as_str()],
                )
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn enabled_settings(&self) -> Result<Vec<(TenantId, RecurringSetting)>, StoreError> {
        const OP: &str = "enabled_settings";
        self.read(OP, move |conn| {
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT tenant, body FROM recurring_settings WHERE enabled = 1 \
                     ORDER BY tenant, setting_id",
                )
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .or_store(OP)?;
            rows.into_iter()
                .map(|(t, b)| {
                    Ok((
                        parse_stored(OP, "tenant", TenantId::parse(t))?,
                        read_setting(OP, &b)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn start_run(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        local_date: &str,
        now: OffsetDateTime,
    ) -> Result<StartRun, StoreError> {
        const OP: &str = "start_run";
        let (tenant, id, date) = (tenant.clone(), setting.clone(), local_date.to_owned());
        self.write(OP, move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO recurring_runs (tenant, setting_id, local_date, started_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![tenant.as_str(), id.as_str(), date, ts(now)],
                )
                .or_store(OP)?;
            if inserted == 1 {
                return Ok(StartRun::Started);
            }
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM recurring_runs \
                     WHERE tenant = ?1 AND setting_id = ?2 AND local_date = ?3"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str(), date])
                .or_store(OP)?;
            match rows.next().or_store(OP)? {
                Some(row) => Ok(StartRun::Already(read_run(OP, row)?)),
                None => Err(StoreError::backend(
                    OP,
                    super::Corrupt("run after conflict"),
                )),
            }
        })
        .await
    }

    async fn finish_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<(), StoreError> {
        const OP: &str = "finish_run";
        let (tenant, run) = (tenant.clone(), run.clone());
        self.write(OP, move |conn| {
            conn.execute(
                "UPDATE recurring_runs SET campaign_id = ?4, finished = ?5 \
                 WHERE tenant = ?1 AND setting_id = ?2 AND local_date = ?3",
                params![
                    tenant.as_str(),
                    run.setting_id.as_str(),
                    run.local_date,
                    run.campaign_id.as_ref().map(CampaignId::as_str),
                    i64::from(run.finished),
                ],
            )
            .or_store(OP)?;
            Ok(())
        })
        .await
    }

    async fn list_runs(
        &self,
        tenant: &TenantId,
        setting: &RecurringId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RunRecord>, StoreError> {
        const OP: &str = "list_runs";
        let before = cursor.map(decode_run_cursor).transpose()?;
        let (tenant, id) = (tenant.clone(), setting.clone());
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM recurring_runs WHERE tenant = ?1 AND setting_id = ?2 \
                     AND (?3 IS NULL OR local_date < ?3) ORDER BY local_date DESC LIMIT ?4"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str(), before, i64::from(limit) + 1])
                .or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_run(OP, row)?);
            }
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|r| encode_run_cursor(&r.local_date))
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }
}
