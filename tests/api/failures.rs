//! When the store fails, the client gets an opaque 500 problem: no SQL, no AWS message.

use std::sync::Arc;

use axum::http::StatusCode;
use portal_core::domain::{
    Account, AccountId, ContactId, ContactRecord, Counts, Division, DivisionId, DivisionInput,
    Email, FilterValues, PortalStatus, TenantId,
};
use portal_core::ports::{
    AccountStore, ContactQuery, ContactStateStore, ContactStore, DivisionStore, FixedClock,
    ListQuery, Page, StoreError, SuppressionReason, SuppressionStore, SyncReport,
};
use portal_http::auth::Verifier;
use portal_http::{router, AppState};
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::*;

#[async_trait::async_trait]
impl portal_core::ports::TemplateStore for Down {
    async fn put_template(
        &self,
        _: &TenantId,
        _: &portal_core::domain::Template,
    ) -> Result<(), StoreError> {
        down("put_template")
    }
    async fn get_template(
        &self,
        _: &TenantId,
        _: &portal_core::domain::TemplateId,
    ) -> Result<Option<portal_core::domain::Template>, StoreError> {
        down("get_template")
    }
    async fn delete_template(
        &self,
        _: &TenantId,
        _: &portal_core::domain::TemplateId,
    ) -> Result<bool, StoreError> {
        down("delete_template")
    }
    async fn list_templates(
        &self,
        _: &TenantId,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<portal_core::domain::Template>, StoreError> {
        down("list_templates")
    }
}

#[async_trait::async_trait]
impl portal_core::ports::RegistrationStore for Down {
    async fn get_portal_key(
        &self,
        _: &TenantId,
        _: &AccountId,
    ) -> Result<Option<portal_core::domain::PortalKey>, StoreError> {
        down("get_portal_key")
    }
    async fn set_portal_key(
        &self,
        _: &TenantId,
        _: &AccountId,
        _: &portal_core::domain::PortalKey,
    ) -> Result<bool, StoreError> {
        down("set_portal_key")
    }
    async fn find_account_by_number(
        &self,
        _: &TenantId,
        _: &str,
    ) -> Result<Option<portal_core::ports::AccountKey>, StoreError> {
        down("find_account_by_number")
    }
    async fn find_token(
        &self,
        _: &[u8; 32],
    ) -> Result<Option<portal_core::ports::TokenRef>, StoreError> {
        down("find_token")
    }
    async fn register(
        &self,
        _: &TenantId,
        _: &portal_core::ports::NewRegistration,
        _: OffsetDateTime,
    ) -> Result<portal_core::ports::RegisterOutcome, StoreError> {
        down("register")
    }
    async fn get_login(
        &self,
        _: &TenantId,
        _: &Email,
    ) -> Result<Option<portal_core::domain::Login>, StoreError> {
        down("get_login")
    }
    async fn mark_provisioned(&self, _: &TenantId, _: &Email) -> Result<bool, StoreError> {
        down("mark_provisioned")
    }
    async fn confirm_login(
        &self,
        _: &TenantId,
        _: &[u8; 32],
        _: OffsetDateTime,
    ) -> Result<portal_core::ports::ConfirmOutcome, StoreError> {
        down("confirm_login")
    }
    async fn find_confirmation(
        &self,
        _: &TenantId,
        _: &[u8; 32],
    ) -> Result<Option<(portal_core::domain::Login, OffsetDateTime, bool)>, StoreError> {
        down("find_confirmation")
    }
    async fn hit_rate_limit(
        &self,
        _: &TenantId,
        _: &str,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        down("hit_rate_limit")
    }
    async fn rate_limit_count(
        &self,
        _: &TenantId,
        _: &str,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        down("rate_limit_count")
    }
    async fn put_request(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RegistrationRequest,
    ) -> Result<(), StoreError> {
        down("put_request")
    }
    async fn get_request(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RequestId,
    ) -> Result<Option<portal_core::domain::RegistrationRequest>, StoreError> {
        down("get_request")
    }
    async fn list_requests(
        &self,
        _: &TenantId,
        _: &portal_core::ports::RequestFilter,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<portal_core::domain::RegistrationRequest>, StoreError> {
        down("list_requests")
    }
    async fn update_request(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RegistrationRequest,
        _: portal_core::domain::RequestStatus,
    ) -> Result<bool, StoreError> {
        down("update_request")
    }
    async fn open_requests_for(
        &self,
        _: &TenantId,
        _: &Email,
    ) -> Result<Vec<portal_core::domain::RegistrationRequest>, StoreError> {
        down("open_requests_for")
    }
    async fn add_other_email(
        &self,
        _: &TenantId,
        _: &ContactId,
        _: &Email,
    ) -> Result<bool, StoreError> {
        down("add_other_email")
    }
}

#[async_trait::async_trait]
impl portal_core::ports::SenderStore for Down {
    async fn get_sender_settings(
        &self,
        _: &TenantId,
    ) -> Result<Option<portal_core::domain::SenderSettings>, StoreError> {
        down("get_sender_settings")
    }
    async fn put_sender_settings(
        &self,
        _: &TenantId,
        _: &portal_core::domain::SenderSettings,
    ) -> Result<(), StoreError> {
        down("put_sender_settings")
    }
}

#[async_trait::async_trait]
impl portal_core::ports::RecurringStore for Down {
    async fn put_setting(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RecurringSetting,
    ) -> Result<(), StoreError> {
        down("put_setting")
    }
    async fn get_setting(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RecurringId,
    ) -> Result<Option<portal_core::domain::RecurringSetting>, StoreError> {
        down("get_setting")
    }
    async fn list_settings(
        &self,
        _: &TenantId,
    ) -> Result<Vec<portal_core::domain::RecurringSetting>, StoreError> {
        down("list_settings")
    }
    async fn delete_setting(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RecurringId,
    ) -> Result<bool, StoreError> {
        down("delete_setting")
    }
    async fn enabled_settings(
        &self,
    ) -> Result<Vec<(TenantId, portal_core::domain::RecurringSetting)>, StoreError> {
        down("enabled_settings")
    }
    async fn start_run(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RecurringId,
        _: &str,
        _: OffsetDateTime,
    ) -> Result<portal_core::ports::StartRun, StoreError> {
        down("start_run")
    }
    async fn finish_run(
        &self,
        _: &TenantId,
        _: &portal_core::ports::RunRecord,
    ) -> Result<(), StoreError> {
        down("finish_run")
    }
    async fn list_runs(
        &self,
        _: &TenantId,
        _: &portal_core::domain::RecurringId,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<portal_core::ports::RunRecord>, StoreError> {
        down("list_runs")
    }
}

/// A store whose backend is down.
struct Down;

/// A cause whose message must never reach a client.
#[derive(Debug)]
struct SecretCause;

impl std::fmt::Display for SecretCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SQLITE_CORRUPT at /var/secret/path.db")
    }
}

impl std::error::Error for SecretCause {}

fn down<T>(op: &'static str) -> Result<T, StoreError> {
    Err(StoreError::backend(op, SecretCause))
}

#[async_trait::async_trait]
impl DivisionStore for Down {
    async fn put_division(&self, _: &TenantId, _: &DivisionInput) -> Result<Division, StoreError> {
        down("put_division")
    }
    async fn get_division(
        &self,
        _: &TenantId,
        _: &DivisionId,
    ) -> Result<Option<Division>, StoreError> {
        down("get_division")
    }
    async fn list_divisions(&self, _: &TenantId) -> Result<Vec<Division>, StoreError> {
        down("list_divisions")
    }
    async fn list_divisions_page(
        &self,
        _: &TenantId,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<Division>, StoreError> {
        down("list_divisions_page")
    }
}

#[async_trait::async_trait]
impl AccountStore for Down {
    async fn upsert_accounts(&self, _: &TenantId, _: &[Account]) -> Result<SyncReport, StoreError> {
        down("upsert_accounts")
    }
    async fn delete_account(&self, _: &TenantId, _: &AccountId) -> Result<bool, StoreError> {
        down("delete_account")
    }
}

#[async_trait::async_trait]
impl ContactStore for Down {
    async fn count_contacts(&self, _: &TenantId, _: &ContactQuery) -> Result<Counts, StoreError> {
        down("count_contacts")
    }
    async fn list_contacts(
        &self,
        _: &TenantId,
        _: &ListQuery,
    ) -> Result<Page<ContactRecord>, StoreError> {
        down("list_contacts")
    }
    async fn get_contact(
        &self,
        _: &TenantId,
        _: &ContactId,
    ) -> Result<Option<ContactRecord>, StoreError> {
        down("get_contact")
    }
    async fn get_contacts(
        &self,
        _: &TenantId,
        _: &[ContactId],
    ) -> Result<Vec<ContactRecord>, StoreError> {
        down("get_contacts")
    }
    async fn locate_contacts(
        &self,
        _: &TenantId,
        _: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, DivisionId>, StoreError> {
        down("locate_contacts")
    }

    async fn filter_values(
        &self,
        _: &TenantId,
        _: &[DivisionId],
    ) -> Result<Vec<FilterValues>, StoreError> {
        down("filter_values")
    }
}

#[async_trait::async_trait]
impl ContactStateStore for Down {
    async fn set_portal_status(
        &self,
        _: &TenantId,
        _: &ContactId,
        _: PortalStatus,
    ) -> Result<bool, StoreError> {
        down("set_portal_status")
    }
    async fn record_invited(
        &self,
        _: &TenantId,
        _: &ContactId,
        _: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        down("record_invited")
    }
}

#[async_trait::async_trait]
impl SuppressionStore for Down {
    async fn suppress(
        &self,
        _: &TenantId,
        _: &Email,
        _: SuppressionReason,
        _: OffsetDateTime,
    ) -> Result<(), StoreError> {
        down("suppress")
    }
    async fn is_suppressed(&self, _: &TenantId, _: &Email) -> Result<bool, StoreError> {
        down("is_suppressed")
    }
    async fn suppressed_among(
        &self,
        _: &TenantId,
        _: &[Email],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        down("suppressed_among")
    }
}

#[tokio::test]
async fn a_failing_store_is_an_opaque_500_problem_on_every_route() {
    let state = AppState::new(
        Arc::new(Down),
        Arc::new(FixedClock::new(NOW)),
        Verifier::hs256(SECRET),
    );
    let app = App {
        router: router(state),
        store: Arc::new(portal_embedded::sqlite::SqliteStore::open_in_memory().unwrap()),
        clock: Arc::new(FixedClock::new(NOW)),
    };
    let t = admin("t1");
    let replies = [
        app.get("/v1/divisions", &t).await,
        app.put(
            "/v1/divisions/d1",
            &t,
            &json!({"name": "D", "email_from": "a@b.com"}),
        )
        .await,
        app.post("/v1/sync/accounts", &t, &json!([account("d1", 0)]))
            .await,
        app.delete("/v1/accounts/a1", &t).await,
        app.post("/v1/invitations/counts", &t, &json!({})).await,
        app.post("/v1/invitations/recipients", &t, &json!({})).await,
    ];
    for r in replies {
        let detail = r.problem(StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!r.text().contains("SQLITE"), "{}", r.text());
        assert!(!r.text().contains("/var/secret"), "{}", r.text());
        assert!(!detail.is_empty());
    }
}

#[async_trait::async_trait]
impl portal_core::ports::CampaignStore for Down {
    async fn create_campaign(
        &self,
        _: &TenantId,
        _: &portal_core::domain::Campaign,
        _: Option<&portal_core::ports::Idempotency>,
        _: OffsetDateTime,
    ) -> Result<portal_core::ports::CreateOutcome, StoreError> {
        down("create_campaign")
    }
    async fn create_selection_campaign(
        &self,
        _: &TenantId,
        _: &portal_core::domain::Campaign,
        _: &[ContactId],
        _: Option<&portal_core::ports::Idempotency>,
        _: OffsetDateTime,
    ) -> Result<portal_core::ports::CreateOutcome, StoreError> {
        down("create_selection_campaign")
    }
    async fn selection_ids(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: u32,
        _: u32,
    ) -> Result<Vec<ContactId>, StoreError> {
        down("selection_ids")
    }
    async fn get_campaign(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
    ) -> Result<Option<portal_core::domain::Campaign>, StoreError> {
        down("get_campaign")
    }
    async fn update_campaign_status(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: portal_core::domain::CampaignStatus,
        _: portal_core::domain::CampaignStatus,
        _: Option<String>,
    ) -> Result<bool, StoreError> {
        down("update_campaign_status")
    }
    async fn add_campaign_counts(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: u64,
        _: portal_core::domain::Skipped,
        _: Option<&str>,
    ) -> Result<bool, StoreError> {
        down("add_campaign_counts")
    }
    async fn lease_batch(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &str,
        _: &str,
        _: OffsetDateTime,
        _: OffsetDateTime,
        _: Option<&portal_core::ports::Attempt>,
    ) -> Result<portal_core::ports::LeaseOutcome, StoreError> {
        down("lease_batch")
    }
    async fn step_batch(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &str,
        _: &str,
        _: &portal_core::ports::LeaseStep,
    ) -> Result<bool, StoreError> {
        down("step_batch")
    }
    async fn claim_contacts(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &[portal_core::ports::Claim],
        _: OffsetDateTime,
    ) -> Result<Vec<portal_core::ports::ClaimResult>, StoreError> {
        down("claim_contacts")
    }
    async fn list_invitations(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &portal_core::ports::InvitationFilter,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<portal_core::domain::Invitation>, StoreError> {
        down("list_invitations")
    }
    async fn list_campaigns(
        &self,
        _: &TenantId,
        _: &DivisionId,
        _: Option<&str>,
        _: u32,
    ) -> Result<Page<portal_core::domain::Campaign>, StoreError> {
        down("list_campaigns")
    }
    async fn recount_campaign(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: bool,
    ) -> Result<Option<portal_core::ports::Recount>, StoreError> {
        down("recount_campaign")
    }
    async fn get_invitation(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &ContactId,
    ) -> Result<Option<portal_core::domain::Invitation>, StoreError> {
        down("get_invitation")
    }
    async fn get_invitations(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &[ContactId],
    ) -> Result<Vec<portal_core::domain::Invitation>, StoreError> {
        down("get_invitations")
    }
    async fn apply_facts(
        &self,
        _: &TenantId,
        _: &portal_core::domain::CampaignId,
        _: &[(ContactId, portal_core::domain::InvitationFact)],
    ) -> Result<Vec<portal_core::ports::FactResult>, StoreError> {
        down("apply_facts")
    }
}
