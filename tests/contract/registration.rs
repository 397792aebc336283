//! Contract cases for registration: portal keys, the invitation-token index, logins (one per
//! address, under concurrent attempts), confirmation links and their expiry, rate-limit
//! windows, sign-up requests and tenant isolation. Each case builds its own tenants.
//!
//! Sets the ports leave unordered (a login's contacts and accounts, an account's contacts)
//! are compared sorted.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::ids::{cid, div, t};
use portal_core::domain::{
    Account, AccountId, CampaignId, CloseReason, DivisionInput, Email, Filters, Group, Invitation,
    InvitationState, Login, LoginVia, PortalKey, PortalStatus, RegistrationRequest,
    RegistrationToken, RequestId, RequestStatus, Template, TemplateId, TemplateKind, TenantId,
    Trigger,
};
use portal_core::ports::{
    Claim, ClaimResult, ConfirmOutcome, ContactQuery, CreateOutcome, ListQuery, NewRegistration,
    RegisterOutcome, RequestFilter, Store, StoreError, TokenRef, Via,
};
use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// "Now" for every case: whole seconds, as every store keeps them.
const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

fn aid(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn key(s: &str) -> PortalKey {
    PortalKey::parse(s).unwrap()
}

/// Polls every future until all are done, on the calling task (the futures borrow the store,
/// so they cannot be spawned): their store calls are in flight together.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

async fn put_div(store: &dyn Store, tenant: &TenantId, id: &str) {
    let d =
        DivisionInput::new(div(id), format!("Division {id}"), email("hoa@example.org")).unwrap();
    store.put_division(tenant, &d).await.unwrap();
}

/// Account `id` in `division` with contacts `{id}-c{i}`, each with `{id}.{i}@example.com`
/// except the last of two or more, which has no address.
fn account(id: &str, division: &str, contacts: usize) -> Account {
    AccountBuilder::new(id)
        .division(division)
        .contacts((0..contacts).map(|i| {
            let mail = (contacts < 2 || i + 1 < contacts).then(|| format!("{id}.{i}@example.com"));
            ContactBuilder::new(format!("{id}-c{i}"))
                .name(format!("Contact {i}"))
                .maybe_email(mail.as_deref())
        }))
        .build()
}

fn contact_query(divisions: &[&str]) -> ListQuery {
    ListQuery {
        contacts: ContactQuery {
            division_ids: divisions.iter().map(|d| div(d)).collect(),
            filters: Filters::default(),
            limit_to_uninvited: false,
            now: NOW,
        },
        group: Group::All,
        search: String::new(),
        cursor: None,
        limit: 500,
        max_examined: None,
    }
}

/// An individual campaign (no division lock) with one invitation per contact; answers the
/// campaign and each contact's token hash.
async fn invite(
    store: &dyn Store,
    tenant: &TenantId,
    contacts: &[&str],
) -> (CampaignId, Vec<[u8; 32]>) {
    let c = CampaignBuilder::new(NOW)
        .trigger(Trigger::Individual)
        .division("d1")
        .build();
    assert_eq!(
        store.create_campaign(tenant, &c, None, NOW).await.unwrap(),
        CreateOutcome::Created
    );
    let hashes: Vec<[u8; 32]> = contacts
        .iter()
        .map(|_| RegistrationToken::generate().hash())
        .collect();
    let claims: Vec<Claim> = contacts
        .iter()
        .zip(&hashes)
        .map(|(id, hash)| Claim {
            contact_id: cid(id),
            division_id: None,
            invitation: Invitation {
                campaign_id: c.campaign_id.clone(),
                contact_id: cid(id),
                email: email(&format!("{id}@example.com")),
                contact_name: format!("Contact {id}"),
                account_number: "N-1".into(),
                registration_token_hash: *hash,
                expires_at: NOW + Duration::days(14),
                state: InvitationState::new(),
                created_at: NOW,
            },
        })
        .collect();
    let results = store
        .claim_contacts(tenant, &c.campaign_id, &claims, NOW)
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| *r == ClaimResult::Claimed),
        "{results:?}"
    );
    (c.campaign_id, hashes)
}

fn by_invitation(
    mail: &str,
    contact: &str,
    account: &str,
    campaign: &CampaignId,
) -> NewRegistration {
    NewRegistration {
        email: email(mail),
        name: "Pat Resident".into(),
        contact_id: Some(cid(contact)),
        account_id: aid(account),
        via: Via::Invitation {
            campaign_id: campaign.clone(),
        },
    }
}

fn by_key(
    mail: &str,
    contact: Option<&str>,
    account: &str,
    hash: [u8; 32],
    expires: OffsetDateTime,
) -> NewRegistration {
    NewRegistration {
        email: email(mail),
        name: "Pat Resident".into(),
        contact_id: contact.map(cid),
        account_id: aid(account),
        via: Via::PortalKey {
            confirm_token_hash: hash,
            confirm_expires_at: expires,
        },
    }
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

async fn status_of(store: &dyn Store, tenant: &TenantId, contact: &str) -> PortalStatus {
    store
        .get_contact(tenant, &cid(contact))
        .await
        .unwrap()
        .unwrap()
        .portal_status
}

async fn key_of_contact(store: &dyn Store, tenant: &TenantId, contact: &str) -> Option<PortalKey> {
    store
        .get_contact(tenant, &cid(contact))
        .await
        .unwrap()
        .unwrap()
        .portal_key
}

// ---------------------------------------------------------------------------------------
// Portal keys
// ---------------------------------------------------------------------------------------

pub async fn sync_gives_every_new_account_a_key_and_keeps_it_on_resync(store: &dyn Store) {
    let tenant = t("keys-new");
    put_div(store, &tenant, "d1").await;
    let accounts = [account("a1", "d1", 2), account("a2", "d1", 1)];
    store.upsert_accounts(&tenant, &accounts).await.unwrap();

    let k1 = store
        .get_portal_key(&tenant, &aid("a1"))
        .await
        .unwrap()
        .expect("a synced account has a key");
    let k2 = store
        .get_portal_key(&tenant, &aid("a2"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(k1, k2, "each account gets its own key");
    assert_eq!(
        k1.as_str().len(),
        19,
        "a generated key: 16 characters in groups of four"
    );
    assert_eq!(
        key_of_contact(store, &tenant, "a1-c0").await,
        Some(k1.clone())
    );
    assert_eq!(
        key_of_contact(store, &tenant, "a1-c1").await,
        Some(k1.clone())
    );
    assert_eq!(
        key_of_contact(store, &tenant, "a2-c0").await,
        Some(k2.clone())
    );
    let listed = store
        .list_contacts(&tenant, &contact_query(&["d1"]))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    for c in &listed.items {
        let expected = if c.account_id == aid("a1") { &k1 } else { &k2 };
        assert_eq!(c.portal_key.as_ref(), Some(expected), "{}", c.contact_id);
    }

    // A resync without keys, even one that changes the account, keeps them.
    let mut changed = account("a1", "d1", 3);
    changed.name = "Renamed".into();
    store
        .upsert_accounts(&tenant, &[changed, account("a2", "d1", 1)])
        .await
        .unwrap();
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a2")).await.unwrap(),
        Some(k2)
    );
    for c in ["a1-c0", "a1-c1", "a1-c2"] {
        assert_eq!(
            key_of_contact(store, &tenant, c).await,
            Some(k1.clone()),
            "{c}"
        );
    }
    assert_eq!(
        store.get_portal_key(&tenant, &aid("nope")).await.unwrap(),
        None
    );
}

pub async fn a_synced_key_replaces_the_stored_one_and_absence_keeps_it(store: &dyn Store) {
    let tenant = t("keys-sync");
    put_div(store, &tenant, "d1").await;
    let sent = key("7kq4-m2xd-9rta");
    store
        .upsert_accounts(
            &tenant,
            &[account("a1", "d1", 2).with_portal_key(Some(sent.clone()))],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap(),
        Some(sent.clone())
    );
    assert_eq!(sent.as_str(), "7KQ4-M2XD-9RTA");

    // An account first synced without a key, then with one.
    store
        .upsert_accounts(&tenant, &[account("a2", "d1", 1)])
        .await
        .unwrap();
    let other = key("ABCD 2345 EFGH");
    store
        .upsert_accounts(
            &tenant,
            &[account("a2", "d1", 1).with_portal_key(Some(other.clone()))],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a2")).await.unwrap(),
        Some(other.clone())
    );
    assert_eq!(
        key_of_contact(store, &tenant, "a2-c0").await,
        Some(other.clone())
    );

    // Later syncs without a key keep the one sent.
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2), account("a2", "d1", 1)])
        .await
        .unwrap();
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap(),
        Some(sent.clone())
    );
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a2")).await.unwrap(),
        Some(other)
    );
    assert_eq!(key_of_contact(store, &tenant, "a1-c1").await, Some(sent));
}

pub async fn rotating_a_key_replaces_it_everywhere(store: &dyn Store) {
    let tenant = t("keys-rotate");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 3), account("a2", "d1", 1)])
        .await
        .unwrap();
    let old = store
        .get_portal_key(&tenant, &aid("a1"))
        .await
        .unwrap()
        .unwrap();
    let untouched = store
        .get_portal_key(&tenant, &aid("a2"))
        .await
        .unwrap()
        .unwrap();
    let new = PortalKey::generate();

    assert!(store
        .set_portal_key(&tenant, &aid("a1"), &new)
        .await
        .unwrap());
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap(),
        Some(new.clone())
    );
    for c in ["a1-c0", "a1-c1", "a1-c2"] {
        assert_eq!(
            key_of_contact(store, &tenant, c).await,
            Some(new.clone()),
            "{c}"
        );
    }
    let found = store
        .find_account_by_number(&tenant, "N-a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.portal_key, new);
    assert!(
        !found.portal_key.matches(old.as_str()),
        "the old key stops working"
    );
    // The other account keeps its key.
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a2")).await.unwrap(),
        Some(untouched.clone())
    );
    assert_eq!(
        key_of_contact(store, &tenant, "a2-c0").await,
        Some(untouched)
    );
    // A resync without a key keeps the rotated one.
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 3)])
        .await
        .unwrap();
    assert_eq!(
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(key_of_contact(store, &tenant, "a1-c2").await, Some(new));

    assert!(!store
        .set_portal_key(&tenant, &aid("missing"), &PortalKey::generate())
        .await
        .unwrap());
    assert_eq!(
        store
            .get_portal_key(&tenant, &aid("missing"))
            .await
            .unwrap(),
        None
    );
}

pub async fn accounts_are_found_by_number_with_their_contacts(store: &dyn Store) {
    let tenant = t("keys-number");
    put_div(store, &tenant, "d1").await;
    put_div(store, &tenant, "d2").await;
    let a1 = AccountBuilder::new("a1")
        .division("d2")
        .number("1001-7")
        .name("The Does")
        .contact(
            ContactBuilder::new("c1")
                .name("Ann")
                .email("Ann@Example.com"),
        )
        .contact(ContactBuilder::new("c2").name("Bob"))
        .build();
    store
        .upsert_accounts(&tenant, &[a1, account("a2", "d1", 1)])
        .await
        .unwrap();

    let found = store
        .find_account_by_number(&tenant, "1001-7")
        .await
        .unwrap()
        .expect("the account with that number");
    assert_eq!(found.account_id, aid("a1"));
    assert_eq!(found.division_id, div("d2"));
    assert_eq!(found.number, "1001-7");
    assert_eq!(found.name, "The Does");
    assert_eq!(
        Some(found.portal_key.clone()),
        store.get_portal_key(&tenant, &aid("a1")).await.unwrap()
    );
    assert_eq!(
        {
            let mut contacts = found.contacts.clone();
            contacts.sort_by(|x, y| x.0.cmp(&y.0));
            contacts
        },
        vec![
            (cid("c1"), Some(email("Ann@Example.com"))),
            (cid("c2"), None)
        ]
    );
    assert_eq!(
        store.find_account_by_number(&tenant, "1001").await.unwrap(),
        None
    );
    assert_eq!(
        store.find_account_by_number(&tenant, "9999").await.unwrap(),
        None
    );

    // A renumbered account answers to its new number only.
    let renumbered = AccountBuilder::new("a1")
        .division("d2")
        .number("2002")
        .name("The Does")
        .contact(
            ContactBuilder::new("c1")
                .name("Ann")
                .email("Ann@Example.com"),
        )
        .build();
    store.upsert_accounts(&tenant, &[renumbered]).await.unwrap();
    assert_eq!(
        store
            .find_account_by_number(&tenant, "1001-7")
            .await
            .unwrap(),
        None
    );
    let found = store
        .find_account_by_number(&tenant, "2002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.account_id, aid("a1"));
    assert_eq!(
        found.contacts,
        vec![(cid("c1"), Some(email("Ann@Example.com")))]
    );
}

// ---------------------------------------------------------------------------------------
// Invitation links and logins
// ---------------------------------------------------------------------------------------

pub async fn a_claimed_invitation_is_found_by_its_token_hash(store: &dyn Store) {
    let tenant = t("tok-find");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2)])
        .await
        .unwrap();
    let (campaign, hashes) = invite(store, &tenant, &["a1-c0", "a1-c1"]).await;
    assert_eq!(
        store.find_token(&hashes[1]).await.unwrap(),
        Some(TokenRef {
            tenant: tenant.clone(),
            campaign_id: campaign.clone(),
            contact_id: cid("a1-c1"),
            used_at: None,
        })
    );
    assert_eq!(
        store
            .find_token(&hashes[0])
            .await
            .unwrap()
            .unwrap()
            .contact_id,
        cid("a1-c0")
    );
    assert_eq!(
        store
            .find_token(&RegistrationToken::generate().hash())
            .await
            .unwrap(),
        None
    );
}

pub async fn registering_through_an_invitation_accepts_the_contact_and_uses_the_token(
    store: &dyn Store,
) {
    let tenant = t("reg-inv");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2), account("a2", "d1", 1)])
        .await
        .unwrap();
    let (campaign, hashes) = invite(store, &tenant, &["a1-c0", "a2-c0"]).await;
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::Pending
    );

    let outcome = store
        .register(
            &tenant,
            &by_invitation("Pat@Example.com", "a1-c0", "a1", &campaign),
            NOW,
        )
        .await
        .unwrap();
    let expected = Login {
        email: email("Pat@Example.com"),
        name: "Pat Resident".into(),
        contact_ids: vec![cid("a1-c0")],
        account_ids: vec![aid("a1")],
        via: LoginVia::Invitation,
        confirmed: true,
        provisioned: false,
        created_at: NOW,
    };
    assert_eq!(outcome, RegisterOutcome::NewLogin(expected.clone()));
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::Accepted
    );
    assert_eq!(
        store.find_token(&hashes[0]).await.unwrap().unwrap().used_at,
        Some(NOW)
    );
    assert_eq!(
        store
            .get_login(&tenant, &email("pat@example.com"))
            .await
            .unwrap(),
        Some(expected.clone())
    );

    // The same link again: nothing happens.
    let later = NOW + Duration::minutes(5);
    assert_eq!(
        store
            .register(
                &tenant,
                &by_invitation("other@example.com", "a1-c0", "a1", &campaign),
                later,
            )
            .await
            .unwrap(),
        RegisterOutcome::TokenUsed
    );
    assert_eq!(
        store
            .get_login(&tenant, &email("other@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_token(&hashes[0]).await.unwrap().unwrap().used_at,
        Some(NOW)
    );

    // Another contact's invitation with the same address joins the login.
    match store
        .register(
            &tenant,
            &by_invitation("PAT@example.com", "a2-c0", "a2", &campaign),
            later,
        )
        .await
        .unwrap()
    {
        RegisterOutcome::ExistingLogin(login) => {
            assert_eq!(
                login.email,
                email("Pat@Example.com"),
                "the first address is kept"
            );
            assert_eq!(sorted(&login.contact_ids), vec![cid("a1-c0"), cid("a2-c0")]);
            assert_eq!(sorted(&login.account_ids), vec![aid("a1"), aid("a2")]);
        }
        other => panic!("expected the existing login, got {other:?}"),
    }
    assert_eq!(
        status_of(store, &tenant, "a2-c0").await,
        PortalStatus::Accepted
    );
    let login = store
        .get_login(&tenant, &email("pat@EXAMPLE.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sorted(&login.contact_ids), vec![cid("a1-c0"), cid("a2-c0")]);
    assert_eq!(sorted(&login.account_ids), vec![aid("a1"), aid("a2")]);
    assert_eq!(login.created_at, NOW);
    assert!(store
        .find_token(&hashes[1])
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());

    // No invitation for that contact, or no such campaign: missing, nothing written.
    assert_eq!(
        store
            .register(
                &tenant,
                &by_invitation("x@example.com", "a1-c1", "a1", &campaign),
                later,
            )
            .await
            .unwrap(),
        RegisterOutcome::Missing
    );
    assert_eq!(
        store
            .register(
                &tenant,
                &by_invitation("x@example.com", "nobody", "a1", &campaign),
                later,
            )
            .await
            .unwrap(),
        RegisterOutcome::Missing
    );
    assert_eq!(
        store
            .get_login(&tenant, &email("x@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        status_of(store, &tenant, "a1-c1").await,
        PortalStatus::NotSent
    );

    // The login's credentials land with the identity provider later.
    assert!(store
        .mark_provisioned(&tenant, &email("PAT@example.com"))
        .await
        .unwrap());
    assert!(
        store
            .get_login(&tenant, &email("pat@example.com"))
            .await
            .unwrap()
            .unwrap()
            .provisioned
    );
    assert!(!store
        .mark_provisioned(&tenant, &email("nobody@example.com"))
        .await
        .unwrap());
}

/// Account `id` in `division` with one contact `{id}-c0` whose address is `mail`.
fn one_contact(id: &str, division: &str, mail: &str) -> Account {
    AccountBuilder::new(id)
        .division(division)
        .contact(
            ContactBuilder::new(format!("{id}-c0"))
                .name("Pat")
                .email(mail),
        )
        .build()
}

/// Three contacts of a tenant share an address in three spellings, in two divisions; one
/// more has another address, and another tenant has a contact with the same address.
/// Registering through one's link accepts the three and names them in the login; nothing
/// else moves.
pub async fn registering_through_one_link_accepts_every_contact_of_the_address(store: &dyn Store) {
    let tenant = t("reg-addr");
    let other = t("reg-addr-other");
    put_div(store, &tenant, "d1").await;
    put_div(store, &tenant, "d2").await;
    put_div(store, &other, "d1").await;
    store
        .upsert_accounts(
            &tenant,
            &[
                one_contact("a1", "d1", "Pat@Example.org"),
                one_contact("a2", "d2", "pat@example.ORG"),
                one_contact("a3", "d1", "PAT@EXAMPLE.ORG"),
                one_contact("a4", "d1", "someone@example.org"),
            ],
        )
        .await
        .unwrap();
    store
        .upsert_accounts(&other, &[one_contact("a1", "d1", "pat@example.org")])
        .await
        .unwrap();
    let (campaign, _) = invite(store, &tenant, &["a1-c0"]).await;

    let outcome = store
        .register(
            &tenant,
            &by_invitation("Pat@Example.org", "a1-c0", "a1", &campaign),
            NOW,
        )
        .await
        .unwrap();
    let RegisterOutcome::NewLogin(login) = outcome else {
        panic!("expected a new login, got {outcome:?}");
    };
    let three = vec![cid("a1-c0"), cid("a2-c0"), cid("a3-c0")];
    assert_eq!(sorted(&login.contact_ids), three);
    assert_eq!(
        sorted(&login.account_ids),
        vec![aid("a1"), aid("a2"), aid("a3")]
    );
    let stored = store
        .get_login(&tenant, &email("pat@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sorted(&stored.contact_ids), three);
    assert_eq!(
        sorted(&stored.account_ids),
        vec![aid("a1"), aid("a2"), aid("a3")]
    );
    for c in ["a1-c0", "a2-c0", "a3-c0"] {
        assert_eq!(
            status_of(store, &tenant, c).await,
            PortalStatus::Accepted,
            "{c}"
        );
    }
    assert_eq!(
        status_of(store, &tenant, "a4-c0").await,
        PortalStatus::NotSent,
        "another address"
    );
    assert_eq!(
        status_of(store, &other, "a1-c0").await,
        PortalStatus::NotSent,
        "another tenant's contact with the address"
    );
    assert_eq!(
        store
            .get_login(&other, &email("pat@example.org"))
            .await
            .unwrap(),
        None
    );
}

/// An address that already has a login (a portal-key sign-up without a contact): registering
/// through a link of the address adds every contact of the address to it.
pub async fn a_link_joining_an_existing_login_brings_every_contact_of_the_address(
    store: &dyn Store,
) {
    let tenant = t("reg-addr-join");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(
            &tenant,
            &[
                one_contact("a1", "d1", "lee@example.org"),
                one_contact("a2", "d1", "LEE@example.org"),
                one_contact("k1", "d1", "keyholder@example.org"),
            ],
        )
        .await
        .unwrap();
    let first = store
        .register(
            &tenant,
            &by_key(
                "Lee@Example.org",
                None,
                "k1",
                [7; 32],
                NOW + Duration::days(2),
            ),
            NOW,
        )
        .await
        .unwrap();
    assert!(matches!(first, RegisterOutcome::NewLogin(_)), "{first:?}");
    let (campaign, _) = invite(store, &tenant, &["a2-c0"]).await;

    let outcome = store
        .register(
            &tenant,
            &by_invitation("LEE@example.org", "a2-c0", "a2", &campaign),
            NOW,
        )
        .await
        .unwrap();
    let RegisterOutcome::ExistingLogin(login) = outcome else {
        panic!("expected the existing login, got {outcome:?}");
    };
    assert_eq!(sorted(&login.contact_ids), vec![cid("a1-c0"), cid("a2-c0")]);
    assert_eq!(
        sorted(&login.account_ids),
        vec![aid("a1"), aid("a2"), aid("k1")]
    );
    let stored = store
        .get_login(&tenant, &email("lee@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sorted(&stored.contact_ids),
        vec![cid("a1-c0"), cid("a2-c0")]
    );
    for c in ["a1-c0", "a2-c0"] {
        assert_eq!(status_of(store, &tenant, c).await, PortalStatus::Accepted);
    }
    assert_eq!(
        status_of(store, &tenant, "k1-c0").await,
        PortalStatus::NotSent
    );
}

/// More contacts share one address than one DynamoDB transaction holds (48 beside the
/// registration's own items): every one is accepted and named in the login all the same.
pub async fn an_address_shared_by_sixty_contacts_accepts_all_sixty(store: &dyn Store) {
    let tenant = t("reg-addr-many");
    put_div(store, &tenant, "d1").await;
    let spellings = ["many@example.org", "Many@Example.org", "MANY@EXAMPLE.ORG"];
    let accounts: Vec<Account> = (0..12)
        .map(|a| {
            AccountBuilder::new(format!("a{a:02}"))
                .contacts((0..5).map(|i| {
                    ContactBuilder::new(format!("a{a:02}-c{i}"))
                        .name("M")
                        .email(spellings[(a + i) % spellings.len()])
                }))
                .build()
        })
        .chain([one_contact("z1", "d1", "not-many@example.org")])
        .collect();
    store.upsert_accounts(&tenant, &accounts).await.unwrap();
    let (campaign, _) = invite(store, &tenant, &["a05-c2"]).await;

    let outcome = store
        .register(
            &tenant,
            &by_invitation("many@example.org", "a05-c2", "a05", &campaign),
            NOW,
        )
        .await
        .unwrap();
    let RegisterOutcome::NewLogin(login) = outcome else {
        panic!("expected a new login, got {outcome:?}");
    };
    let all: BTreeSet<_> = (0..12)
        .flat_map(|a| (0..5).map(move |i| cid(&format!("a{a:02}-c{i}"))))
        .collect();
    assert_eq!(
        login.contact_ids.iter().cloned().collect::<BTreeSet<_>>(),
        all
    );
    assert_eq!(login.account_ids.len(), 12);
    let stored = store
        .get_login(&tenant, &email("MANY@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.contact_ids.iter().cloned().collect::<BTreeSet<_>>(),
        all
    );
    assert_eq!(stored.contact_ids.len(), 60);
    for c in &all {
        assert_eq!(
            status_of(store, &tenant, c.as_str()).await,
            PortalStatus::Accepted,
            "{c}"
        );
    }
    assert_eq!(
        status_of(store, &tenant, "z1-c0").await,
        PortalStatus::NotSent
    );
}

/// 50 registrations of one address (in several spellings), each through another contact's
/// invitation, all at once: one login, naming every contact and account.
pub async fn fifty_concurrent_registrations_of_one_address_make_one_login(store: &dyn Store) {
    let tenant = t("reg-race");
    put_div(store, &tenant, "d1").await;
    let accounts: Vec<Account> = (0..10)
        .map(|a| {
            AccountBuilder::new(format!("a{a}"))
                .contacts((0..5).map(|i| ContactBuilder::new(format!("a{a}-c{i}")).name("X")))
                .build()
        })
        .collect();
    store.upsert_accounts(&tenant, &accounts).await.unwrap();
    let contacts: Vec<String> = (0..50).map(|n| format!("a{}-c{}", n / 5, n % 5)).collect();
    let ids: Vec<&str> = contacts.iter().map(String::as_str).collect();
    let (campaign, _) = invite(store, &tenant, &ids).await;
    let spellings = ["sam@example.com", "Sam@Example.com", "SAM@EXAMPLE.COM"];
    let registrations: Vec<NewRegistration> = (0..50)
        .map(|n| {
            by_invitation(
                spellings[n % spellings.len()],
                &contacts[n],
                &format!("a{}", n / 5),
                &campaign,
            )
        })
        .collect();

    let outcomes = join_all(
        registrations
            .iter()
            .map(|r| store.register(&tenant, r, NOW))
            .collect(),
    )
    .await;

    let outcomes: Vec<RegisterOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let new = outcomes
        .iter()
        .filter(|o| matches!(o, RegisterOutcome::NewLogin(_)))
        .count();
    let existing = outcomes
        .iter()
        .filter(|o| matches!(o, RegisterOutcome::ExistingLogin(_)))
        .count();
    assert_eq!((new, existing), (1, 49), "{outcomes:?}");
    let login = store
        .get_login(&tenant, &email("sAm@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        login.contact_ids.iter().cloned().collect::<BTreeSet<_>>(),
        ids.iter().map(|c| cid(c)).collect::<BTreeSet<_>>(),
        "the login names every contact"
    );
    assert_eq!(login.contact_ids.len(), 50, "each contact once");
    assert_eq!(
        sorted(&login.account_ids),
        (0..10).map(|a| aid(&format!("a{a}"))).collect::<Vec<_>>()
    );
    for c in &ids {
        assert_eq!(
            status_of(store, &tenant, c).await,
            PortalStatus::Accepted,
            "{c}"
        );
    }
}

/// 20 registrations with one invitation's link, all at once, each with its own address:
/// exactly one registers, the others find the token used and write nothing.
pub async fn one_token_under_twenty_concurrent_registrations_works_once(store: &dyn Store) {
    let tenant = t("tok-race");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 1)])
        .await
        .unwrap();
    let (campaign, hashes) = invite(store, &tenant, &["a1-c0"]).await;
    let registrations: Vec<NewRegistration> = (0..20)
        .map(|n| by_invitation(&format!("r{n}@example.com"), "a1-c0", "a1", &campaign))
        .collect();

    let outcomes: Vec<RegisterOutcome> = join_all(
        registrations
            .iter()
            .map(|r| store.register(&tenant, r, NOW))
            .collect(),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();

    let winners: Vec<usize> = (0..20)
        .filter(|&n| matches!(outcomes[n], RegisterOutcome::NewLogin(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let used = outcomes
        .iter()
        .filter(|o| **o == RegisterOutcome::TokenUsed)
        .count();
    assert_eq!(used, 19, "{outcomes:?}");
    for n in 0..20 {
        let login = store
            .get_login(&tenant, &email(&format!("r{n}@example.com")))
            .await
            .unwrap();
        assert_eq!(login.is_some(), n == winners[0], "r{n}");
    }
    assert_eq!(
        store.find_token(&hashes[0]).await.unwrap().unwrap().used_at,
        Some(NOW)
    );
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::Accepted
    );
}

// ---------------------------------------------------------------------------------------
// Portal-key sign-up and confirmation links
// ---------------------------------------------------------------------------------------

pub async fn a_portal_key_registration_waits_for_its_address_to_be_confirmed(store: &dyn Store) {
    let tenant = t("key-reg");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2)])
        .await
        .unwrap();
    let hash = RegistrationToken::generate().hash();
    let expires = NOW + Duration::hours(24);
    let outcome = store
        .register(
            &tenant,
            &by_key("Kim@Example.com", Some("a1-c0"), "a1", hash, expires),
            NOW,
        )
        .await
        .unwrap();
    let expected = Login {
        email: email("Kim@Example.com"),
        name: "Pat Resident".into(),
        contact_ids: vec![cid("a1-c0")],
        account_ids: vec![aid("a1")],
        via: LoginVia::PortalKey,
        confirmed: false,
        provisioned: false,
        created_at: NOW,
    };
    assert_eq!(outcome, RegisterOutcome::NewLogin(expected.clone()));
    assert_eq!(
        store
            .get_login(&tenant, &email("kim@example.com"))
            .await
            .unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.find_confirmation(&tenant, &hash).await.unwrap(),
        Some((expected.clone(), expires, false))
    );
    // Not accepted until the address is confirmed.
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::NotSent
    );

    // An address on no contact of the account registers too.
    let other = RegistrationToken::generate().hash();
    match store
        .register(
            &tenant,
            &by_key("new@example.com", None, "a1", other, expires),
            NOW,
        )
        .await
        .unwrap()
    {
        RegisterOutcome::NewLogin(login) => {
            assert!(login.contact_ids.is_empty());
            assert_eq!(login.account_ids, vec![aid("a1")]);
            assert!(!login.confirmed);
        }
        o => panic!("{o:?}"),
    }
}

pub async fn an_existing_login_on_the_key_path_writes_nothing(store: &dyn Store) {
    let tenant = t("key-existing");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2), account("a2", "d1", 1)])
        .await
        .unwrap();
    let first = RegistrationToken::generate().hash();
    let expires = NOW + Duration::hours(24);
    let RegisterOutcome::NewLogin(login) = store
        .register(
            &tenant,
            &by_key("kim@example.com", Some("a1-c0"), "a1", first, expires),
            NOW,
        )
        .await
        .unwrap()
    else {
        panic!("a first registration makes a login");
    };
    let second = RegistrationToken::generate().hash();
    assert_eq!(
        store
            .register(
                &tenant,
                &by_key("KIM@example.com", Some("a2-c0"), "a2", second, expires),
                NOW + Duration::minutes(1),
            )
            .await
            .unwrap(),
        RegisterOutcome::ExistingLogin(login.clone())
    );
    assert_eq!(
        store.find_confirmation(&tenant, &second).await.unwrap(),
        None
    );
    assert_eq!(
        store.confirm_login(&tenant, &second, NOW).await.unwrap(),
        ConfirmOutcome::Unknown
    );
    assert_eq!(
        store
            .get_login(&tenant, &email("kim@example.com"))
            .await
            .unwrap(),
        Some(login)
    );
}

pub async fn a_confirmation_link_works_once_until_it_expires(store: &dyn Store) {
    let tenant = t("key-confirm");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 2)])
        .await
        .unwrap();
    let hash = RegistrationToken::generate().hash();
    let expires = NOW + Duration::hours(24);
    store
        .register(
            &tenant,
            &by_key("kim@example.com", Some("a1-c0"), "a1", hash, expires),
            NOW,
        )
        .await
        .unwrap();

    // At its expiry and after, the link is expired and changes nothing.
    for at in [expires, expires + Duration::seconds(1)] {
        assert_eq!(
            store.confirm_login(&tenant, &hash, at).await.unwrap(),
            ConfirmOutcome::Expired,
            "{at}"
        );
    }
    let (login, _, used) = store
        .find_confirmation(&tenant, &hash)
        .await
        .unwrap()
        .unwrap();
    assert!(!used && !login.confirmed);
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::NotSent
    );

    // A second before, it confirms the login and accepts its contact.
    let confirmed = match store
        .confirm_login(&tenant, &hash, expires - Duration::seconds(1))
        .await
        .unwrap()
    {
        ConfirmOutcome::Confirmed(login) => login,
        o => panic!("{o:?}"),
    };
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.contact_ids, vec![cid("a1-c0")]);
    assert_eq!(
        store
            .get_login(&tenant, &email("kim@example.com"))
            .await
            .unwrap(),
        Some(confirmed.clone())
    );
    assert_eq!(
        status_of(store, &tenant, "a1-c0").await,
        PortalStatus::Accepted
    );
    assert_eq!(
        status_of(store, &tenant, "a1-c1").await,
        PortalStatus::NotSent
    );
    assert_eq!(
        store.find_confirmation(&tenant, &hash).await.unwrap(),
        Some((confirmed.clone(), expires, true))
    );

    // Twice: already confirmed (even after expiry).
    for at in [NOW, expires + Duration::days(1)] {
        assert_eq!(
            store.confirm_login(&tenant, &hash, at).await.unwrap(),
            ConfirmOutcome::AlreadyConfirmed(confirmed.clone())
        );
    }
    assert_eq!(
        store
            .confirm_login(&tenant, &RegistrationToken::generate().hash(), NOW)
            .await
            .unwrap(),
        ConfirmOutcome::Unknown
    );
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

pub async fn rate_limits_count_per_key_and_window_and_expire(store: &dyn Store) {
    let tenant = t("rate");
    let window = Duration::minutes(15);
    let w0 = NOW;
    let w1 = w0 + window;
    let account = "acct:1001-7";
    let address = "ip:203.0.113.9";
    for n in 1..=3 {
        assert_eq!(
            store
                .hit_rate_limit(&tenant, account, w0, w1)
                .await
                .unwrap(),
            n
        );
    }
    assert_eq!(
        store
            .hit_rate_limit(&tenant, address, w0, w1)
            .await
            .unwrap(),
        1
    );
    let during = w0 + Duration::minutes(7);
    assert_eq!(
        store
            .rate_limit_count(&tenant, account, w0, during)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .rate_limit_count(&tenant, address, w0, during)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .rate_limit_count(&tenant, "ip:other", w0, during)
            .await
            .unwrap(),
        0
    );

    // The next window starts at zero; the old counter reads zero once expired.
    let after = w1 + Duration::minutes(1);
    assert_eq!(
        store
            .rate_limit_count(&tenant, account, w1, after)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .hit_rate_limit(&tenant, account, w1, w1 + window)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .rate_limit_count(&tenant, account, w0, after)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .rate_limit_count(&tenant, account, w1, after)
            .await
            .unwrap(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Sign-up requests
// ---------------------------------------------------------------------------------------

/// A request filed `n` minutes after NOW.
fn request(n: i64, mail: &str, division: &str, status: RequestStatus) -> RegistrationRequest {
    let at = NOW + Duration::minutes(n);
    RegistrationRequest {
        request_id: RequestId::generate(at),
        name: format!("Resident {n}"),
        email: email(mail),
        phone: "555-0100".into(),
        address: format!("{n} Main St"),
        division_id: div(division),
        account_number: (n % 2 == 0).then(|| format!("ACC-{n}")),
        status,
        matched_account_id: None,
        matched_contact_id: None,
        note: None,
        created_at: at,
        updated_at: at,
    }
}

async fn list_requests_all(
    store: &dyn Store,
    tenant: &TenantId,
    filter: &RequestFilter,
    limit: u32,
) -> Vec<RegistrationRequest> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = store
            .list_requests(tenant, filter, cursor.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        if let Some(n) = filter.max_examined {
            assert!(page.items.len() <= n as usize, "a page over its budget");
        }
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("paging did not end");
}

pub async fn requests_list_newest_first_filtered_and_paged(store: &dyn Store) {
    let tenant = t("req-list");
    let closed = RequestStatus::Closed(CloseReason::Rejected);
    let requests = [
        request(1, "a@example.com", "d1", RequestStatus::Open),
        request(2, "b@example.com", "d2", RequestStatus::Open),
        request(3, "c@example.com", "d1", RequestStatus::Matched),
        request(4, "d@example.com", "d2", closed),
        request(5, "e@example.com", "d1", RequestStatus::Open),
        request(6, "f@example.com", "d2", RequestStatus::KeySent),
        request(7, "g@example.com", "d1", RequestStatus::Open),
    ];
    for r in &requests {
        store.put_request(&tenant, r).await.unwrap();
    }
    assert_eq!(
        store
            .get_request(&tenant, &requests[3].request_id)
            .await
            .unwrap(),
        Some(requests[3].clone())
    );
    let newest_first = |pick: &dyn Fn(&RegistrationRequest) -> bool| -> Vec<RegistrationRequest> {
        requests.iter().rev().filter(|r| pick(r)).cloned().collect()
    };

    // Every budget of requests examined per page lists the same requests.
    for (limit, budget) in [
        (1, None),
        (2, None),
        (3, None),
        (50, None),
        (50, Some(1)),
        (2, Some(2)),
        (50, Some(3)),
        (3, Some(7)),
    ] {
        let all = RequestFilter {
            max_examined: budget,
            ..RequestFilter::default()
        };
        assert_eq!(
            list_requests_all(store, &tenant, &all, limit).await,
            newest_first(&|_| true),
            "limit {limit}"
        );
        let open = RequestFilter {
            status: Some("open"),
            division_id: None,
            max_examined: budget,
        };
        assert_eq!(
            list_requests_all(store, &tenant, &open, limit).await,
            newest_first(&|r| r.status == RequestStatus::Open)
        );
        let d1_open = RequestFilter {
            status: Some("open"),
            division_id: Some(div("d1")),
            max_examined: budget,
        };
        assert_eq!(
            list_requests_all(store, &tenant, &d1_open, limit).await,
            newest_first(&|r| r.status == RequestStatus::Open && r.division_id == div("d1"))
        );
        let d2 = RequestFilter {
            status: None,
            division_id: Some(div("d2")),
            max_examined: budget,
        };
        assert_eq!(
            list_requests_all(store, &tenant, &d2, limit).await,
            newest_first(&|r| r.division_id == div("d2"))
        );
        let closed_only = RequestFilter {
            status: Some("closed"),
            division_id: None,
            max_examined: budget,
        };
        assert_eq!(
            list_requests_all(store, &tenant, &closed_only, limit).await,
            vec![requests[3].clone()]
        );
    }
    // The only closed request is the fourth newest: a page that may examine three is empty
    // and says where to go on; the next finds it.
    let closed_only = RequestFilter {
        status: Some("closed"),
        division_id: None,
        max_examined: Some(3),
    };
    let page = store
        .list_requests(&tenant, &closed_only, None, 50)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let page = store
        .list_requests(&tenant, &closed_only, page.next_cursor.as_deref(), 50)
        .await
        .unwrap();
    assert_eq!(page.items, vec![requests[3].clone()]);
    let first = store
        .list_requests(&tenant, &RequestFilter::default(), None, 2)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next_cursor.is_some());
    let all = store
        .list_requests(&tenant, &RequestFilter::default(), None, 7)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.next_cursor, None, "nothing follows the last page");

    for forged in [
        "",
        "!!!",
        "bm90IGEgY3Vyc29y",
        "eyJ2IjoxLCJkIjoiZDEiLCJzIjowLCJjIjoieCJ9",
    ] {
        assert!(
            matches!(
                store
                    .list_requests(&tenant, &RequestFilter::default(), Some(forged), 10)
                    .await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{forged:?}"
        );
    }
}

pub async fn a_request_moves_only_from_the_status_it_was_read_in(store: &dyn Store) {
    let tenant = t("req-move");
    let r = request(1, "a@example.com", "d1", RequestStatus::Open);
    store.put_request(&tenant, &r).await.unwrap();

    let mut matched = r.clone();
    matched.status = RequestStatus::Matched;
    matched.matched_account_id = Some(aid("a1"));
    matched.matched_contact_id = Some(cid("c1"));
    matched.updated_at = NOW + Duration::hours(1);
    assert!(store
        .update_request(&tenant, &matched, RequestStatus::Open)
        .await
        .unwrap());
    assert_eq!(
        store.get_request(&tenant, &r.request_id).await.unwrap(),
        Some(matched.clone())
    );

    // A writer that read it while open is too late now.
    let mut rejected = r.clone();
    rejected.status = RequestStatus::Closed(CloseReason::Rejected);
    rejected.note = Some("not a resident".into());
    assert!(!store
        .update_request(&tenant, &rejected, RequestStatus::Open)
        .await
        .unwrap());
    assert_eq!(
        store.get_request(&tenant, &r.request_id).await.unwrap(),
        Some(matched.clone())
    );

    let mut sent = matched.clone();
    sent.status = RequestStatus::KeySent;
    assert!(store
        .update_request(&tenant, &sent, RequestStatus::Matched)
        .await
        .unwrap());
    let mut closed = sent.clone();
    closed.status = RequestStatus::Closed(CloseReason::Registered);
    assert!(store
        .update_request(&tenant, &closed, RequestStatus::KeySent)
        .await
        .unwrap());
    // Closed for another reason than expected: refused.
    assert!(!store
        .update_request(&tenant, &sent, RequestStatus::Closed(CloseReason::Rejected))
        .await
        .unwrap());
    assert_eq!(
        store.get_request(&tenant, &r.request_id).await.unwrap(),
        Some(closed)
    );

    // A request never filed cannot be updated into existence.
    let ghost = request(2, "b@example.com", "d1", RequestStatus::Matched);
    assert!(!store
        .update_request(&tenant, &ghost, RequestStatus::Open)
        .await
        .unwrap());
    assert_eq!(
        store.get_request(&tenant, &ghost.request_id).await.unwrap(),
        None
    );
}

pub async fn open_requests_are_found_by_address_case_insensitively(store: &dyn Store) {
    let tenant = t("req-open");
    let open = request(1, "Sam@Example.com", "d1", RequestStatus::Open);
    let matched = request(2, "sam@example.com", "d2", RequestStatus::Matched);
    let closed = request(
        3,
        "SAM@example.com",
        "d1",
        RequestStatus::Closed(CloseReason::Expired),
    );
    let other = request(4, "someone@example.com", "d1", RequestStatus::Open);
    for r in [&open, &matched, &closed, &other] {
        store.put_request(&tenant, r).await.unwrap();
    }
    let mut found: Vec<RequestId> = store
        .open_requests_for(&tenant, &email("SAM@EXAMPLE.COM"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    found.sort();
    assert_eq!(found, sorted(&[open.request_id, matched.request_id]));
    assert!(store
        .open_requests_for(&tenant, &email("nobody@example.com"))
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// Other emails, template kinds, tenants
// ---------------------------------------------------------------------------------------

pub async fn other_emails_are_added_to_existing_contacts_only(store: &dyn Store) {
    let tenant = t("other-email");
    put_div(store, &tenant, "d1").await;
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 1)])
        .await
        .unwrap();
    let before = store
        .get_contact(&tenant, &cid("a1-c0"))
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .add_other_email(&tenant, &cid("a1-c0"), &email("home@example.net"))
        .await
        .unwrap());
    assert!(store
        .add_other_email(&tenant, &cid("a1-c0"), &email("home@example.net"))
        .await
        .unwrap());
    assert!(!store
        .add_other_email(&tenant, &cid("nobody"), &email("home@example.net"))
        .await
        .unwrap());
    // The contact's synced address is untouched, and a resync keeps the other email.
    assert_eq!(
        store.get_contact(&tenant, &cid("a1-c0")).await.unwrap(),
        Some(before)
    );
    store
        .upsert_accounts(&tenant, &[account("a1", "d1", 1)])
        .await
        .unwrap();
    assert!(store
        .get_contact(&tenant, &cid("a1-c0"))
        .await
        .unwrap()
        .is_some());
}

pub async fn a_portal_key_template_reads_back_as_its_kind(store: &dyn Store) {
    let tenant = t("tpl-kind");
    let key_email = Template::of_kind(
        TemplateKind::PortalKey,
        TemplateId::parse("key-letter").unwrap(),
        "Your portal key",
        "Your key for [AccountNumber]",
        "<p>Account [AccountNumber], key [PortalKey]: <a href=\"[PortalLink]\">sign up</a></p>",
        "Account [AccountNumber], key [PortalKey]",
    )
    .unwrap();
    let invitation = Template::new(
        TemplateId::parse("welcome").unwrap(),
        "Welcome",
        "Join the portal",
        "<a href=\"[PortalLink]\">Join</a>",
        "Join: [PortalLink]",
    )
    .unwrap();
    store.put_template(&tenant, &key_email).await.unwrap();
    store.put_template(&tenant, &invitation).await.unwrap();
    let got = store
        .get_template(&tenant, key_email.template_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.kind(), TemplateKind::PortalKey);
    assert_eq!(got, key_email);
    let kinds: Vec<(String, TemplateKind)> = crate::templates::all_templates(store, &tenant)
        .await
        .iter()
        .map(|t| (t.template_id().to_string(), t.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("key-letter".to_owned(), TemplateKind::PortalKey),
            ("welcome".to_owned(), TemplateKind::Invitation)
        ]
    );
}

pub async fn registration_data_never_crosses_tenants(store: &dyn Store) {
    let (a, b) = (t("iso-a"), t("iso-b"));
    for tenant in [&a, &b] {
        put_div(store, tenant, "d1").await;
    }
    store
        .upsert_accounts(&a, &[account("a1", "d1", 2)])
        .await
        .unwrap();
    store
        .upsert_accounts(
            &b,
            &[AccountBuilder::new("b1")
                .number("N-b1")
                .contact(ContactBuilder::new("b1-c0").name("B"))
                .build()],
        )
        .await
        .unwrap();

    // Keys and account numbers.
    assert_eq!(store.get_portal_key(&b, &aid("a1")).await.unwrap(), None);
    assert!(!store
        .set_portal_key(&b, &aid("a1"), &PortalKey::generate())
        .await
        .unwrap());
    assert!(store
        .find_account_by_number(&a, "N-a1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.find_account_by_number(&b, "N-a1").await.unwrap(),
        None
    );
    assert_eq!(
        store.find_account_by_number(&a, "N-b1").await.unwrap(),
        None
    );

    // A token of tenant A is unknown under tenant B.
    let (campaign, hashes) = invite(store, &a, &["a1-c0"]).await;
    assert_eq!(
        store.find_token(&hashes[0]).await.unwrap().unwrap().tenant,
        a
    );
    assert_eq!(
        store
            .register(
                &b,
                &by_invitation("eve@example.com", "a1-c0", "a1", &campaign),
                NOW
            )
            .await
            .unwrap(),
        RegisterOutcome::Missing
    );
    assert_eq!(
        store.find_token(&hashes[0]).await.unwrap().unwrap().used_at,
        None
    );
    assert_eq!(
        store
            .get_login(&b, &email("eve@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(status_of(store, &a, "a1-c0").await, PortalStatus::Pending);

    // Logins and confirmation links.
    assert!(matches!(
        store
            .register(
                &a,
                &by_invitation("pat@example.com", "a1-c0", "a1", &campaign),
                NOW
            )
            .await
            .unwrap(),
        RegisterOutcome::NewLogin(_)
    ));
    assert_eq!(
        store
            .get_login(&b, &email("pat@example.com"))
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .mark_provisioned(&b, &email("pat@example.com"))
        .await
        .unwrap());
    let hash = RegistrationToken::generate().hash();
    assert!(matches!(
        store
            .register(
                &a,
                &by_key(
                    "kim@example.com",
                    Some("a1-c1"),
                    "a1",
                    hash,
                    NOW + Duration::days(1)
                ),
                NOW
            )
            .await
            .unwrap(),
        RegisterOutcome::NewLogin(_)
    ));
    // The same address is free in the other tenant.
    assert!(matches!(
        store
            .register(
                &b,
                &by_key(
                    "kim@example.com",
                    Some("b1-c0"),
                    "b1",
                    RegistrationToken::generate().hash(),
                    NOW + Duration::days(1)
                ),
                NOW
            )
            .await
            .unwrap(),
        RegisterOutcome::NewLogin(_)
    ));
    assert_eq!(store.find_confirmation(&b, &hash).await.unwrap(), None);
    assert_eq!(
        store.confirm_login(&b, &hash, NOW).await.unwrap(),
        ConfirmOutcome::Unknown
    );
    assert!(
        !store
            .get_login(&a, &email("kim@example.com"))
            .await
            .unwrap()
            .unwrap()
            .confirmed
    );

    // Rate limits, requests, other emails.
    store
        .hit_rate_limit(&a, "k", NOW, NOW + Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(store.rate_limit_count(&b, "k", NOW, NOW).await.unwrap(), 0);
    let r = request(1, "sam@example.com", "d1", RequestStatus::Open);
    store.put_request(&a, &r).await.unwrap();
    assert_eq!(store.get_request(&b, &r.request_id).await.unwrap(), None);
    assert!(store
        .list_requests(&b, &RequestFilter::default(), None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .open_requests_for(&b, &email("sam@example.com"))
        .await
        .unwrap()
        .is_empty());
    let mut moved = r.clone();
    moved.status = RequestStatus::Matched;
    assert!(!store
        .update_request(&b, &moved, RequestStatus::Open)
        .await
        .unwrap());
    assert_eq!(store.get_request(&a, &r.request_id).await.unwrap(), Some(r));
    assert!(!store
        .add_other_email(&b, &cid("a1-c0"), &email("x@example.com"))
        .await
        .unwrap());
}
