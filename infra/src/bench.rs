//! What the send benchmarks (`bench-send`, `bench-dynamodb --send`) share: the template and
//! the manual campaign they run, recorded the way `POST /v1/campaigns` records one.

use anyhow::bail;
use portal_core::domain::{
    Campaign, CampaignId, CampaignStatus, DivisionId, Email, Filters, Skipped, Template,
    TemplateId, TenantId, Trigger,
};
use portal_core::ports::{CreateOutcome, Store};
use time::OffsetDateTime;

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
    let campaign = Campaign {
        campaign_id: CampaignId::generate(now),
        trigger: Trigger::Manual,
        status: CampaignStatus::Queued,
        division_ids: vec![division.clone()],
        filters: Filters::default(),
        limit_to_uninvited: true,
        template_id: template.template_id().to_string(),
        email_from: sender,
        created_at: now,
        created_by: "bench".into(),
        targeted: 0,
        skipped: Skipped::default(),
        categories: Default::default(),
        pause_reason: None,
    };
    if store.create_campaign(tenant, &campaign, None, now).await? != CreateOutcome::Created {
        bail!("the campaign was not created");
    }
    Ok(campaign)
}
