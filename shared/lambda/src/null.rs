//! The adapters of a process that must not use a port: a function whose role may not call
//! `events:PutEvents` or SES gets these, so a wrong message fails loudly instead of being
//! half-done; a function whose role may not touch the table at all (the console's) gets
//! [`NoStore`].

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;

use portal_core::domain::{
    Account, AccountId, Campaign, CampaignId, CampaignStatus, ContactId, ContactRecord, Counts,
    Division, DivisionId, DivisionInput, Email, FilterValues, Invitation, InvitationFact, Login,
    PortalKey, PortalStatus, RecurringId, RecurringSetting, RegistrationRequest, RequestId,
    RequestStatus, SenderSettings, Skipped, Template, TemplateId, TenantId,
};
use portal_core::ports::{
    AccountKey, AccountStore, Attempt, BusError, CampaignStore, Claim, ClaimResult, ConfirmOutcome,
    ContactQuery, ContactStateStore, ContactStore, CreateOutcome, DivisionStore, EventBus,
    FactResult, Idempotency, InvitationFilter, LeaseOutcome, LeaseStep, ListQuery, MailError,
    Mailer, NewRegistration, Page, RawEmail, Recount, RecurringStore, RegisterOutcome,
    RegistrationStore, RequestFilter, RunRecord, SendMessage, SenderStore, SentMessage, StartRun,
    StoreError, SuppressionReason, SuppressionStore, SyncReport, TemplateStore, TokenRef,
};

/// The bus of a process that publishes nothing (the delivery function, whose role may not
/// call `events:PutEvents`): an empty publish succeeds, anything else is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBus;

#[async_trait]
impl EventBus for NoBus {
    async fn publish(&self, messages: &[SendMessage]) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        Err(BusError::Backend(
            format!(
                "this process has no event bus, yet {} message(s) were to be published",
                messages.len()
            )
            .into(),
        ))
    }
}

/// The mailer of a process that sends nothing (the fan-out function, whose role may not
/// call SES): every send is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send_raw(&self, _msg: &RawEmail) -> Result<SentMessage, MailError> {
        Err(MailError::Backend("this process has no mailer".into()))
    }
}

/// The store of a process that holds no data (the console function, whose role has no
/// DynamoDB action): every call fails as a store error (an opaque 500 to a client), so a
/// route that reads data and was wired to it by mistake is a loud failure, never an empty
/// answer. Keeps the DynamoDB client out of such a function's package.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoStore;

fn refused<T>(op: &'static str) -> Result<T, StoreError> {
    Err(StoreError::Backend {
        op,
        source: "this process has no store".into(),
    })
}

/// One `impl` per store trait, every method refused by name. (A macro because the traits
/// have some sixty methods and each answer is the same; the compiler still checks every
/// signature against its trait.)
macro_rules! refuse_all {
    ($($store:ident { $(fn $name:ident($($arg:ty),*) -> $ret:ty;)* })*) => {
        $(
            #[async_trait]
            impl $store for NoStore {
                $(
                    async fn $name(&self, $(_: $arg),*) -> Result<$ret, StoreError> {
                        refused(stringify!($name))
                    }
                )*
            }
        )*
    };
}

refuse_all! {
    DivisionStore {
        fn put_division(&TenantId, &DivisionInput) -> Division;
        fn get_division(&TenantId, &DivisionId) -> Option<Division>;
        fn list_divisions(&TenantId) -> Vec<Division>;
        fn list_divisions_page(&TenantId, Option<&str>, u32) -> Page<Division>;
    }
    AccountStore {
        fn upsert_accounts(&TenantId, &[Account]) -> SyncReport;
        fn delete_account(&TenantId, &AccountId) -> bool;
    }
    ContactStore {
        fn count_contacts(&TenantId, &ContactQuery) -> Counts;
        fn list_contacts(&TenantId, &ListQuery) -> Page<ContactRecord>;
        fn get_contact(&TenantId, &ContactId) -> Option<ContactRecord>;
        fn get_contacts(&TenantId, &[ContactId]) -> Vec<ContactRecord>;
        fn locate_contacts(&TenantId, &[ContactId])
            -> std::collections::HashMap<ContactId, DivisionId>;
        fn filter_values(&TenantId, &[DivisionId]) -> Vec<FilterValues>;
    }
    ContactStateStore {
        fn set_portal_status(&TenantId, &ContactId, PortalStatus) -> bool;
        fn record_invited(&TenantId, &ContactId, OffsetDateTime) -> bool;
    }
    SuppressionStore {
        fn suppress(&TenantId, &Email, SuppressionReason, OffsetDateTime) -> ();
        fn is_suppressed(&TenantId, &Email) -> bool;
        fn suppressed_among(&TenantId, &[Email]) -> HashSet<String>;
    }
    CampaignStore {
        fn create_campaign(&TenantId, &Campaign, Option<&Idempotency>, OffsetDateTime)
            -> CreateOutcome;
        fn create_selection_campaign(
            &TenantId, &Campaign, &[ContactId], Option<&Idempotency>, OffsetDateTime
        ) -> CreateOutcome;
        fn selection_ids(&TenantId, &CampaignId, u32, u32) -> Vec<ContactId>;
        fn get_campaign(&TenantId, &CampaignId) -> Option<Campaign>;
        fn update_campaign_status(
            &TenantId, &CampaignId, CampaignStatus, CampaignStatus, Option<String>
        ) -> bool;
        fn add_campaign_counts(&TenantId, &CampaignId, u64, Skipped, Option<&str>) -> bool;
        fn lease_batch(
            &TenantId, &CampaignId, &str, &str, OffsetDateTime, OffsetDateTime, Option<&Attempt>
        ) -> LeaseOutcome;
        fn step_batch(&TenantId, &CampaignId, &str, &str, &LeaseStep) -> bool;
        fn claim_contacts(&TenantId, &CampaignId, &[Claim], OffsetDateTime)
            -> Vec<ClaimResult>;
        fn get_invitation(&TenantId, &CampaignId, &ContactId) -> Option<Invitation>;
        fn get_invitations(&TenantId, &CampaignId, &[ContactId]) -> Vec<Invitation>;
        fn apply_facts(&TenantId, &CampaignId, &[(ContactId, InvitationFact)])
            -> Vec<FactResult>;
        fn list_invitations(
            &TenantId, &CampaignId, &InvitationFilter, Option<&str>, u32
        ) -> Page<Invitation>;
        fn list_campaigns(&TenantId, &DivisionId, Option<&str>, u32) -> Page<Campaign>;
        fn recount_campaign(&TenantId, &CampaignId, bool) -> Option<Recount>;
    }
    TemplateStore {
        fn put_template(&TenantId, &Template) -> ();
        fn get_template(&TenantId, &TemplateId) -> Option<Template>;
        fn delete_template(&TenantId, &TemplateId) -> bool;
        fn list_templates(&TenantId, Option<&str>, u32) -> Page<Template>;
    }
    RegistrationStore {
        fn get_portal_key(&TenantId, &AccountId) -> Option<PortalKey>;
        fn set_portal_key(&TenantId, &AccountId, &PortalKey) -> bool;
        fn find_account_by_number(&TenantId, &str) -> Option<AccountKey>;
        fn find_token(&[u8; 32]) -> Option<TokenRef>;
        fn register(&TenantId, &NewRegistration, OffsetDateTime) -> RegisterOutcome;
        fn get_login(&TenantId, &Email) -> Option<Login>;
        fn mark_provisioned(&TenantId, &Email) -> bool;
        fn confirm_login(&TenantId, &[u8; 32], OffsetDateTime) -> ConfirmOutcome;
        fn find_confirmation(&TenantId, &[u8; 32])
            -> Option<(Login, OffsetDateTime, bool)>;
        fn hit_rate_limit(&TenantId, &str, OffsetDateTime, OffsetDateTime) -> u32;
        fn rate_limit_count(&TenantId, &str, OffsetDateTime, OffsetDateTime) -> u32;
        fn put_request(&TenantId, &RegistrationRequest) -> ();
        fn get_request(&TenantId, &RequestId) -> Option<RegistrationRequest>;
        fn list_requests(&TenantId, &RequestFilter, Option<&str>, u32)
            -> Page<RegistrationRequest>;
        fn update_request(&TenantId, &RegistrationRequest, RequestStatus) -> bool;
        fn open_requests_for(&TenantId, &Email) -> Vec<RegistrationRequest>;
        fn add_other_email(&TenantId, &ContactId, &Email) -> bool;
    }
    RecurringStore {
        fn put_setting(&TenantId, &RecurringSetting) -> ();
        fn get_setting(&TenantId, &RecurringId) -> Option<RecurringSetting>;
        fn list_settings(&TenantId) -> Vec<RecurringSetting>;
        fn delete_setting(&TenantId, &RecurringId) -> bool;
        fn enabled_settings() -> Vec<(TenantId, RecurringSetting)>;
        fn start_run(&TenantId, &RecurringId, &str, OffsetDateTime) -> StartRun;
        fn finish_run(&TenantId, &RunRecord) -> ();
        fn list_runs(&TenantId, &RecurringId, Option<&str>, u32) -> Page<RunRecord>;
    }
    SenderStore {
        fn get_sender_settings(&TenantId) -> Option<SenderSettings>;
        fn put_sender_settings(&TenantId, &SenderSettings) -> ();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::{CampaignId, TenantId};

    fn campaign() -> CampaignId {
        CampaignId::parse("0195b2c3d4e5f60718293a4b5c6d7e8f").unwrap()
    }

    #[tokio::test]
    async fn no_bus_accepts_nothing_to_publish_and_refuses_anything_else() {
        NoBus.publish(&[]).await.unwrap();
        let msg = SendMessage::FanOut {
            tenant: TenantId::parse("acme").unwrap(),
            campaign_id: campaign(),
            cursor: None,
            spec: None,
        };
        assert!(matches!(
            NoBus.publish(&[msg]).await,
            Err(BusError::Backend(_))
        ));
    }

    #[tokio::test]
    async fn no_store_refuses_every_call_by_name() {
        use portal_core::ports::Store;
        let store: &dyn Store = &NoStore;
        let tenant = TenantId::parse("acme").unwrap();
        match store.list_divisions(&tenant).await {
            Err(StoreError::Backend { op, .. }) => assert_eq!(op, "list_divisions"),
            other => panic!("{other:?}"),
        }
        assert!(store.enabled_settings().await.is_err());
        assert!(store.find_token(&[0; 32]).await.is_err());
    }
}
