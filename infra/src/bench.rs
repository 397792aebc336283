//! What the benchmarks share: the division they load, the template and the manual campaign
//! they run (recorded the way `POST /v1/campaigns` records one), and the null mailer.

use anyhow::bail;
use portal_core::demo;
use portal_core::domain::{
    Campaign, DivisionId, DivisionInput, Email, Template, TemplateId, TenantId,
};
use portal_core::ports::{CreateOutcome, Store};
use portal_core::usecases::sync::SYNC_CHUNK;
use portal_testkit::builders::CampaignBuilder;
use time::OffsetDateTime;

/// Accepts and drops every message: the send pipeline without a file system or SES.
pub use portal_testkit::null::NullMailer;

/// A realistic invitation using every merge tag but `[PortalKey]`.
pub fn welcome_template() -> anyhow::Result<Template> {
    Ok(Template::new(
        TemplateId::parse("welcome")?,
        "Welcome",
        "Your [DivisionName] portal is ready, [ContactName]",
        "<p>Dear [ContactName],</p><p>Account [AccountNumber] ([AccountName]) can now be \
         managed online. <a href=\"[PortalLink]\">Register here</a>.</p>\
         <p><a href=\"[UnsubscribeLink]\">Unsubscribe</a></p>",
        "Dear [ContactName],\nAccount [AccountNumber] ([AccountName]) can now be managed \
         online: [PortalLink]\nUnsubscribe: [UnsubscribeLink]",
    )?)
}

/// Saves [`welcome_template`] and records a queued manual campaign over `division` (no
/// filters, uninvited contacts only) sent from `sender`.
pub async fn record_campaign(
    store: &dyn Store,
    tenant: &TenantId,
    division: &DivisionId,
    sender: Email,
) -> anyhow::Result<Campaign> {
    let template = welcome_template()?;
    store.put_template(tenant, &template).await?;
    let now = OffsetDateTime::now_utc();
    let campaign = CampaignBuilder::new(now)
        .division(division)
        .template(template.template_id().to_string())
        .email_from(sender.as_str())
        .created_by("bench")
        .build();
    if store.create_campaign(tenant, &campaign, None, now).await? != CreateOutcome::Created {
        bail!("the campaign was not created");
    }
    Ok(campaign)
}

const LOAD_CHUNK: usize = 2_000;

/// Loads one division of `size` contacts made by the deterministic demo generator (every
/// contact with an address is eligible).
pub async fn load_division(
    store: &dyn Store,
    tenant: &TenantId,
    division: &DivisionId,
    size: usize,
) -> anyhow::Result<()> {
    store
        .put_division(
            tenant,
            &DivisionInput::new(
                division.clone(),
                "Oak Hills HOA".into(),
                Email::parse("board@oakhills.example.org")?,
            )?,
        )
        .await?;
    let mut written = 0usize;
    let mut next = 0u64;
    while written < size {
        let mut chunk = demo::accounts(demo::DEMO_SEED, division, next, LOAD_CHUNK)?;
        next += LOAD_CHUNK as u64;
        let mut kept = Vec::with_capacity(chunk.len());
        for mut a in chunk.drain(..) {
            if written >= size {
                break;
            }
            a.contacts.truncate(size - written);
            written += a.contacts.len();
            kept.push(a);
        }
        for part in kept.chunks(SYNC_CHUNK) {
            store.upsert_accounts(tenant, part).await?;
        }
    }
    Ok(())
}
