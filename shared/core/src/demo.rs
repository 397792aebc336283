//! Deterministic demo and benchmark data: realistic accounts, contacts and portal states.
//!
//! Everything here is a pure function of a seed and an index, so the same call always
//! yields the same data, and a large division can be generated in chunks (`first_account`,
//! `count`) that compose into exactly what one big call would give. Each account draws from
//! its own [`StdRng`] seeded by (seed, division, account number).
//!
//! - [`accounts`]: accounts of one division with 1–3 contacts each (the first is the billing
//!   contact), several classes, bill groups and sources, ~85% with active services, ~30%
//!   with a balance due, ~40% on autopay, ~8% of contacts without email.
//! - [`portal_state`] / [`suppression`]: what the system would have recorded for a contact:
//!   ~35% accepted, ~20% pending (invited over the last 30 days, a tenth of them within the
//!   last 24 hours), the rest not sent; ~2% of addresses suppressed.
//! - [`load_demo`]: the local server's `--demo` tenant `demo` — three divisions, about
//!   10,000 contacts — written through the store port, so it works on every adapter.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

use crate::domain::{
    Account, AccountId, ContactId, ContactInput, DivisionId, DivisionInput, DomainError, Email,
    PortalStatus, TenantId,
};
use crate::ports::{Store, StoreError, SuppressionReason};
use crate::usecases::sync::SYNC_CHUNK;

/// The seed `load_demo` uses.
pub const DEMO_SEED: u64 = 2026;

/// The demo divisions: id, name, sender, number of accounts.
pub const DEMO_DIVISIONS: [(&str, &str, &str, u64); 3] = [
    (
        "oak-hills",
        "Oak Hills HOA",
        "board@oakhills.example.com",
        3_000,
    ),
    (
        "river-bend",
        "River Bend Utilities",
        "billing@riverbend.example.net",
        2_000,
    ),
    (
        "cedar-park",
        "Cedar Park Condominiums",
        "office@cedarpark.example.org",
        1_250,
    ),
];

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sandra",
    "Mark",
    "Ashley",
    "Wei",
    "Emily",
    "Steven",
    "Priya",
    "Andrew",
    "Donna",
    "José",
    "Michelle",
    "Kenji",
    "Amanda",
    "Omar",
    "Melissa",
    "Chloé",
    "Brian",
    "Fatima",
    "Kevin",
    "Ingrid",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Nguyen",
    "Patel",
    "Kim",
    "O'Brien",
    "Müller",
    "Okafor",
    "Larsen",
    "Rossi",
    "Cohen",
];
const STREETS: &[&str] = &[
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Willow",
    "Birch",
    "Lakeview",
    "Hillcrest",
    "Sunset",
    "Meadow",
    "River",
    "Park",
    "Highland",
    "Ridge",
];
const COMPANY_SUFFIXES: &[&str] = &["LLC", "Inc.", "Holdings", "Properties", "Group"];
const DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];

/// Account classes with their weights (percent).
pub const CLASSES: &[(&str, u32)] = &[
    ("Residential", 58),
    ("Multi-Family", 16),
    ("Commercial", 14),
    ("Industrial", 4),
    ("Irrigation", 5),
    ("Municipal", 3),
];
pub const BILL_GROUPS: &[&str] = &["Cycle 1", "Cycle 2", "Cycle 3", "Cycle 4", "Cycle 5"];
pub const ACCOUNT_SOURCES: &[&str] = &["CIS", "Web Signup", "Migration", "Field Service"];
pub const SITE_SOURCES: &[&str] = &["GIS", "Manual Entry", "Developer Import"];

/// A stable 64-bit mix of a seed and a text key (FNV-1a then splitmix), so per-record
/// generators do not depend on `std`'s randomised hasher.
fn mix(seed: u64, key: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn weighted<'a>(rng: &mut StdRng, from: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = from.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total.max(1));
    for (v, w) in from {
        if r < *w {
            return v;
        }
        r -= w;
    }
    from.first().map_or("", |(v, _)| v)
}

/// The account id of account number `n` of a division: `<division>.A<n>`.
pub fn account_id(division: &DivisionId, n: u64) -> Result<AccountId, DomainError> {
    AccountId::parse(format!("{division}.A{n:07}"))
}

/// Generates accounts `first_account .. first_account + count` of a division. Ids are
/// `<division>.A<n>` for accounts and `<division>.A<n>.<k>` for contacts, so divisions of
/// one tenant never collide. Deterministic: the same arguments give the same accounts, and
/// account `n` is the same whatever chunk it is generated in.
pub fn accounts(
    seed: u64,
    division: &DivisionId,
    first_account: u64,
    count: usize,
) -> Result<Vec<Account>, DomainError> {
    (first_account..first_account + count as u64)
        .map(|n| account(seed, division, n))
        .collect()
}

fn account(seed: u64, division: &DivisionId, n: u64) -> Result<Account, DomainError> {
    let mut rng = StdRng::seed_from_u64(mix(seed, division.as_str(), n));
    let class = weighted(&mut rng, CLASSES);
    let last = pick(&mut rng, LAST_NAMES);
    let first = pick(&mut rng, FIRST_NAMES);
    let business = matches!(class, "Commercial" | "Industrial" | "Municipal");
    let name = if business {
        format!(
            "{last} {} {}",
            pick(&mut rng, STREETS),
            pick(&mut rng, COMPANY_SUFFIXES)
        )
    } else {
        format!("{first} {last}")
    };
    let number = format!("{:03}-{:07}", 100 + mix(0, division.as_str(), 0) % 900, n);
    let balance_due_cents = if rng.random_bool(0.30) {
        rng.random_range(500..60_000)
    } else if rng.random_bool(0.05) {
        -rng.random_range(100..5_000) // a credit
    } else {
        0
    };
    let n_contacts = match rng.random_range(0..100) {
        0..=54 => 1,
        55..=84 => 2,
        _ => 3,
    };
    let account_id = account_id(division, n)?;
    let mut contacts = Vec::with_capacity(n_contacts);
    for k in 0..n_contacts {
        let (cf, cl) = if k == 0 && !business {
            (first, last)
        } else {
            (
                pick(&mut rng, FIRST_NAMES),
                if rng.random_bool(0.6) {
                    last
                } else {
                    pick(&mut rng, LAST_NAMES)
                },
            )
        };
        let email = if rng.random_bool(0.08) {
            None
        } else {
            let local: String = format!("{cf}.{cl}{}", n % 1000)
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            let domain = pick(&mut rng, DOMAINS);
            // Some addresses arrive in mixed case, as real systems send them.
            let raw = if rng.random_bool(0.1) {
                format!("{local}@{}", domain.to_uppercase())
            } else {
                format!("{}@{domain}", local.to_lowercase())
            };
            Some(Email::parse(&raw)?)
        };
        contacts.push(ContactInput::new(
            ContactId::parse(format!("{account_id}.{k}"))?,
            format!("{cf} {cl}"),
            email,
            format!(
                "555-{:03}-{:04}",
                rng.random_range(100..1000),
                rng.random_range(0..10_000)
            ),
            k == 0,
        )?);
    }
    Account::new(
        account_id,
        division.clone(),
        number,
        name,
        class.into(),
        pick(&mut rng, BILL_GROUPS).into(),
        pick(&mut rng, ACCOUNT_SOURCES).into(),
        pick(&mut rng, SITE_SOURCES).into(),
        rng.random_bool(0.85),
        balance_due_cents,
        rng.random_bool(0.40),
        None,
        contacts,
    )
}

/// The system state a demo contact should have at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoState {
    pub status: PortalStatus,
    /// When the last invitation went out (whole seconds).
    pub invited_at: Option<OffsetDateTime>,
}

/// Decides a contact's portal state: ~35% accepted (most of them invited 30–180 days
/// ago), ~20% pending with an invitation over the last 30 days (a tenth within the last
/// 24 hours, so the hold shows), the rest never invited. Depends only on seed and id.
pub fn portal_state(seed: u64, contact: &ContactId, now: OffsetDateTime) -> DemoState {
    let mut rng = StdRng::seed_from_u64(mix(seed ^ 0x5157_4154, contact.as_str(), 1));
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let roll = rng.random_range(0..100);
    if roll < 35 {
        let invited_at = rng
            .random_bool(0.8)
            .then(|| now - Duration::seconds(rng.random_range(30 * 86_400..180 * 86_400)));
        DemoState {
            status: PortalStatus::Accepted,
            invited_at,
        }
    } else if roll < 55 {
        let ago = if rng.random_bool(0.1) {
            rng.random_range(60..86_400)
        } else {
            rng.random_range(86_400..30 * 86_400)
        };
        DemoState {
            status: PortalStatus::Pending,
            invited_at: Some(now - Duration::seconds(ago)),
        }
    } else {
        DemoState {
            status: PortalStatus::NotSent,
            invited_at: None,
        }
    }
}

/// Whether a contact's address is on the suppression list (~2% of addresses), and why.
pub fn suppression(seed: u64, contact: &ContactId) -> Option<SuppressionReason> {
    let mut rng = StdRng::seed_from_u64(mix(seed ^ 0x5355_5050, contact.as_str(), 2));
    match rng.random_range(0..1000) {
        0..=11 => Some(SuppressionReason::Bounced),
        12..=15 => Some(SuppressionReason::Complained),
        16..=19 => Some(SuppressionReason::Unsubscribed),
        _ => None,
    }
}

/// The demo tenant's id, `demo`.
pub fn demo_tenant() -> TenantId {
    // "demo" is a valid id; the fallback is unreachable but keeps this infallible.
    TenantId::parse("demo").unwrap_or_else(|_| unreachable!("\"demo\" is a valid tenant id"))
}

/// Why the demo could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Generated data failed validation: a bug in this module.
    #[error("generated demo data is invalid: {0}")]
    Domain(#[from] DomainError),
}

/// What [`load_demo`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DemoSummary {
    pub tenant: String,
    pub divisions: u64,
    pub accounts: u64,
    pub contacts: u64,
    pub accepted: u64,
    pub pending: u64,
    /// Invitations recorded (pending contacts and most accepted ones).
    pub invitations: u64,
    pub suppressed: u64,
}

/// Contacts whose state writes run concurrently in [`apply_states`]: a store may serialise
/// writes, but overlapping them hides the per-call hand-off to its worker threads.
const STATE_CONCURRENCY: usize = 8;

/// Applies [`portal_state`] and [`suppression`] to the given accounts' contacts through the
/// store port (each contact's writes in order; contacts concurrently). Idempotent. Adds what
/// it did to `summary`.
pub async fn apply_states(
    store: &dyn Store,
    tenant: &TenantId,
    seed: u64,
    accounts: &[Account],
    now: OffsetDateTime,
    summary: &mut DemoSummary,
) -> Result<(), StoreError> {
    use futures::stream::{self, StreamExt, TryStreamExt};

    let one = |c: &ContactInput| {
        let c = c.clone();
        async move {
            let mut done = DemoSummary::default();
            let state = portal_state(seed, &c.contact_id, now);
            if let Some(at) = state.invited_at {
                store.record_invited(tenant, &c.contact_id, at).await?;
                done.invitations += 1;
            }
            store
                .set_portal_status(tenant, &c.contact_id, state.status)
                .await?;
            match state.status {
                PortalStatus::Accepted => done.accepted += 1,
                PortalStatus::Pending => done.pending += 1,
                PortalStatus::NotSent => {}
            }
            if let (Some(email), Some(reason)) = (&c.email, suppression(seed, &c.contact_id)) {
                store.suppress(tenant, email, reason, now).await?;
                done.suppressed += 1;
            }
            Ok::<_, StoreError>(done)
        }
    };
    let mut results = stream::iter(accounts.iter().flat_map(|a| &a.contacts))
        .map(one)
        .buffer_unordered(STATE_CONCURRENCY);
    while let Some(done) = results.try_next().await? {
        summary.invitations += done.invitations;
        summary.accepted += done.accepted;
        summary.pending += done.pending;
        summary.suppressed += done.suppressed;
    }
    Ok(())
}

/// Loads the demo tenant `demo`: the three [`DEMO_DIVISIONS`] and about 10,000 contacts
/// with a realistic mix of statuses, invitations (relative to `now`) and suppressions.
/// Re-running it rewrites the same data, so it is safe to call on every start.
#[tracing::instrument(skip_all)]
/// The demo tenant's invitation template, `welcome` (saved only when absent, so a
/// manager's edits survive a restart).
pub fn demo_template() -> crate::domain::Template {
    let id = crate::domain::TemplateId::parse(DEMO_TEMPLATE).unwrap_or_else(|_| unreachable!());
    match crate::domain::Template::new(
        id,
        "Welcome to the portal",
        "[DivisionName]: your resident portal is ready",
        "<p>Hello [ContactName],</p>\n<p>[DivisionName] now has a resident portal: pay, see your \
         account [AccountNumber] and reach the office online.</p>\n\
         <p><a href=\"[PortalLink]\">Create your login</a></p>\n\
         <p>Or sign up with your portal key <strong>[PortalKey]</strong>.</p>\n\
         <p><a href=\"[UnsubscribeLink]\">Unsubscribe</a></p>\n",
        "Hello [ContactName],\n\n[DivisionName] now has a resident portal: pay, see your account \
         [AccountNumber] and reach the office online.\n\nCreate your login: [PortalLink]\n\n\
         Or sign up with your portal key [PortalKey].\n\nUnsubscribe: [UnsubscribeLink]\n",
    ) {
        Ok(t) => t,
        Err(e) => unreachable!("the demo template is invalid: {e}"),
    }
}

/// Id of [`demo_template`].
pub const DEMO_TEMPLATE: &str = "welcome";

pub async fn load_demo(store: &dyn Store, now: OffsetDateTime) -> Result<DemoSummary, DemoError> {
    let tenant = demo_tenant();
    let mut summary = DemoSummary {
        tenant: tenant.to_string(),
        ..Default::default()
    };
    for (id, name, from, n_accounts) in DEMO_DIVISIONS {
        let division = DivisionId::parse(id)?;
        let input = DivisionInput::new(division.clone(), name.into(), Email::parse(from)?)?;
        store.put_division(&tenant, &input).await?;
        summary.divisions += 1;
        let mut next = 0;
        while next < n_accounts {
            let count = (n_accounts - next).min(SYNC_CHUNK as u64);
            let chunk = accounts(DEMO_SEED, &division, next, count as usize)?;
            let report = store.upsert_accounts(&tenant, &chunk).await?;
            summary.accounts += report.accounts;
            summary.contacts += report.contacts;
            apply_states(store, &tenant, DEMO_SEED, &chunk, now, &mut summary).await?;
            next += count;
        }
    }
    // The demo tenant sends from its divisions' domains.
    if store.get_sender_settings(&tenant).await?.is_none() {
        let domains: Vec<String> = DEMO_DIVISIONS
            .iter()
            .filter_map(|(_, _, from, _)| from.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .collect();
        let settings = crate::domain::SenderSettings::new(&domains, &[], now, "demo")?;
        store.put_sender_settings(&tenant, &settings).await?;
    }
    if store
        .get_template(&tenant, &demo_template().template_id().clone())
        .await?
        .is_none()
    {
        store.put_template(&tenant, &demo_template()).await?;
    }
    tracing::info!(
        accounts = summary.accounts,
        contacts = summary.contacts,
        "demo tenant loaded"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn d() -> DivisionId {
        DivisionId::parse("oak-hills").unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_accounts_in_any_chunking() {
        let whole = accounts(7, &d(), 0, 40).unwrap();
        let mut parts = accounts(7, &d(), 0, 15).unwrap();
        parts.extend(accounts(7, &d(), 15, 25).unwrap());
        assert_eq!(whole, parts);
        assert_ne!(whole, accounts(8, &d(), 0, 40).unwrap());
    }

    #[test]
    fn generated_accounts_have_a_realistic_mix() {
        let all = accounts(DEMO_SEED, &d(), 0, 4_000).unwrap();
        let contacts: Vec<_> = all.iter().flat_map(|a| &a.contacts).collect();
        let share = |n: usize, of: usize| n as f64 / of as f64;
        let active = share(all.iter().filter(|a| a.active_services).count(), all.len());
        let balance = share(
            all.iter().filter(|a| a.balance_due_cents > 0).count(),
            all.len(),
        );
        let autopay = share(all.iter().filter(|a| a.autopay).count(), all.len());
        let no_email = share(
            contacts.iter().filter(|c| c.email.is_none()).count(),
            contacts.len(),
        );
        assert!((0.82..0.88).contains(&active), "active {active}");
        assert!((0.26..0.34).contains(&balance), "balance {balance}");
        assert!((0.36..0.44).contains(&autopay), "autopay {autopay}");
        assert!((0.06..0.10).contains(&no_email), "no email {no_email}");
        assert!(all.iter().all(|a| a.contacts[0].billing));
        assert!(all
            .iter()
            .all(|a| a.contacts.iter().skip(1).all(|c| !c.billing)));
        let classes: std::collections::HashSet<_> = all.iter().map(|a| &a.class).collect();
        assert!(classes.len() >= 5);
        let per_account = share(contacts.len(), all.len());
        assert!((1.5..1.7).contains(&per_account), "{per_account}");
    }

    #[test]
    fn portal_states_mix_accepted_pending_and_recent_invitations() {
        let now = datetime!(2026-11-02 12:00:00 UTC);
        let ids: Vec<_> = (0..5_000)
            .map(|i| ContactId::parse(format!("c{i}")).unwrap())
            .collect();
        let states: Vec<_> = ids.iter().map(|c| portal_state(1, c, now)).collect();
        let count = |s: PortalStatus| states.iter().filter(|x| x.status == s).count();
        assert!((1_600..1_900).contains(&count(PortalStatus::Accepted)));
        assert!((850..1_150).contains(&count(PortalStatus::Pending)));
        let recent = states
            .iter()
            .filter(|s| s.invited_at.is_some_and(|t| now - t < Duration::hours(24)))
            .count();
        assert!(recent > 50, "{recent} invited within 24h");
        assert!(states.iter().all(|s| s.status == PortalStatus::Accepted
            || s.invited_at.is_some() == (s.status == PortalStatus::Pending)));
        let suppressed = ids.iter().filter(|c| suppression(1, c).is_some()).count();
        assert!((50..160).contains(&suppressed), "{suppressed}");
    }
}
