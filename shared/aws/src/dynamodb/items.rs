//! Item shapes: encoding domain values into DynamoDB attribute maps and back, and the
//! [`Merger`] that joins each contact's sync item with the state item sorted right after it.
//!
//! Attribute names are short but readable; projections always go through
//! `ExpressionAttributeNames` because several of them (`name`, `source`, `status`...) are
//! DynamoDB reserved words.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::keys::{self, CONTACT_SK_PREFIX, STATE_SK_SUFFIX};
use portal_core::domain::{
    AccountId, Campaign, ContactId, ContactRecord, Division, DivisionId, Email, PortalKey,
    PortalStatus,
};
use portal_core::ports::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) const PK: &str = "pk";
pub(super) const SK: &str = "sk";

// Division item.
pub(super) const DIV_NAME: &str = "name";
pub(super) const DIV_EMAIL_FROM: &str = "email_from";
pub(super) const DIV_LAST_BULK: &str = "last_bulk_sent_at";
/// When `put_division` first wrote the item; absent on divisions written before it was kept.
pub(super) const DIV_FIRST_SYNCED: &str = "first_synced_at";
/// Whether the division's filter-value summary can be believed (see `filter_values`):
/// [`FILTER_VALUES_KEPT`], [`FILTER_VALUES_OFF`], or absent (a division created before the
/// summaries were kept).
pub(super) const DIV_FILTER_VALUES: &str = "fv";
pub(super) const FILTER_VALUES_KEPT: &str = "kept";
pub(super) const FILTER_VALUES_OFF: &str = "off";

// Account item and contact locator.
pub(super) const DIVISION: &str = "div";
pub(super) const ACCOUNT: &str = "acc";
pub(super) const CONTACTS: &str = "contacts";
/// The account's portal key: on the account item (the authority) and copied onto each of its
/// contacts' sync items (for `[PortalKey]` on every read path).
pub(super) const PORTAL_KEY: &str = "pkey";
/// An account item's version (N), one more at each write of sync or delete, which each
/// conditions on the version it read; absent on items written before the filter-value
/// summaries were kept (see `filter_values`).
pub(super) const VERSION: &str = "ver";

// The sparse index (see the module docs of the adapter for what carries it).
pub(super) const GSI1PK: &str = "gsi1pk";
pub(super) const GSI1SK: &str = "gsi1sk";

// Contact sync item.
const NAME: &str = "name";
pub(super) const EMAIL: &str = "email";
const PHONE: &str = "phone";
const BILLING: &str = "billing";
pub(super) const ACC_NUMBER: &str = "acc_no";
pub(super) const ACC_NAME: &str = "acc_name";
// The four list-filter fields: on sync items, and on account items (their values, which
// the account's contacts share).
pub(super) const CLASS: &str = "class";
pub(super) const BILL_GROUP: &str = "bill_group";
pub(super) const SOURCE: &str = "source";
pub(super) const SITE_SOURCE: &str = "site_source";
const ACTIVE: &str = "active";
const BALANCE: &str = "balance";
const AUTOPAY: &str = "autopay";

// Contact state item.
pub(super) const STATUS: &str = "status";
pub(super) const INVITED_AT: &str = "invited_at";
pub(super) const LAST_LOGIN: &str = "last_login";
/// Invitations claimed for the contact (N), added to by each claim in the claim's own write.
pub(super) const INVITATIONS_SENT: &str = "n_inv";

// Suppression item.
pub(super) const REASON: &str = "reason";
pub(super) const SUPPRESSED_AT: &str = "at";

/// Attributes a count needs: everything `Filters::matches` and `classify` read, and nothing
/// else (no names, phone, account number or name). Missing text attributes decode as empty.
pub(super) const COUNT_PROJECTION: &[&str] = &[
    SK,
    ACCOUNT,
    EMAIL,
    BILLING,
    CLASS,
    BILL_GROUP,
    SOURCE,
    SITE_SOURCE,
    ACTIVE,
    BALANCE,
    AUTOPAY,
    STATUS,
    INVITED_AT,
    INVITATIONS_SENT,
];

/// `gsi1pk` of every campaign that is neither completed nor failed, of every tenant (the
/// sweeper's index, see `sweep`).
pub(super) const ACTIVE_CAMPAIGNS_GSI_PK: &str = "ACTIVE#CMP";

/// The index keys a campaign item carries while it is not completed or failed (see
/// `sweep`); `None` for a finished one.
pub(super) fn active_campaign_index(
    t: &portal_core::domain::TenantId,
    c: &Campaign,
) -> Result<Option<(AttributeValue, AttributeValue)>, StoreError> {
    if c.status.is_terminal() {
        return Ok(None);
    }
    let created = match time_value(c.created_at)? {
        AttributeValue::S(at) => at,
        _ => return Err(malformed("created_at")),
    };
    Ok(Some((
        s(ACTIVE_CAMPAIGNS_GSI_PK),
        s(format!("{created}#T#{t}#{}", c.campaign_id)),
    )))
}

/// A stored item this adapter cannot read back: a bug or a hand-edited table.
#[derive(Debug, thiserror::Error)]
#[error("malformed item: {0}")]
pub(super) struct MalformedItem(pub String);

pub(super) fn malformed(what: impl Into<String>) -> StoreError {
    StoreError::backend("decode item", MalformedItem(what.into()))
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A time as RFC 3339 in UTC with exactly nine fractional digits: fixed width, so stored
/// times compare correctly as strings in condition expressions (the 24-hour rule).
pub(super) fn time_value(t: OffsetDateTime) -> Result<AttributeValue, StoreError> {
    t.to_offset(UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
        ))
        .map(AttributeValue::S)
        .map_err(|e| StoreError::backend("format time", e))
}

pub(super) fn get_str<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

pub(super) fn req_str<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    get_str(item, name).ok_or_else(|| malformed(format!("missing string attribute {name}")))
}

fn text(item: &Item, name: &str) -> String {
    get_str(item, name).unwrap_or_default().to_owned()
}

fn flag(item: &Item, name: &str) -> bool {
    matches!(item.get(name), Some(AttributeValue::Bool(true)))
}

pub(super) fn time_attr(item: &Item, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    get_str(item, name)
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| malformed(format!("bad time in {name}")))
        })
        .transpose()
}

pub(super) fn req_time(item: &Item, name: &str) -> Result<OffsetDateTime, StoreError> {
    time_attr(item, name)?.ok_or_else(|| malformed(name))
}

pub(super) fn num(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A signed DynamoDB number.
pub(super) fn signed(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn get_num(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        None => Ok(0),
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| malformed(name)),
        Some(_) => Err(malformed(name)),
    }
}

pub(super) fn get_hash(item: &Item, name: &str) -> Result<[u8; 32], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => <[u8; 32]>::try_from(b.as_ref()).map_err(|_| malformed(name)),
        _ => Err(malformed(name)),
    }
}

pub(super) fn division_id(item: &Item, name: &str) -> Result<DivisionId, StoreError> {
    DivisionId::parse(req_str(item, name)?).map_err(|_| malformed("bad division id"))
}

pub(super) fn account_id(item: &Item, name: &str) -> Result<AccountId, StoreError> {
    AccountId::parse(req_str(item, name)?).map_err(|_| malformed("bad account id"))
}

/// The contact ids listed on an account item.
pub(super) fn contact_ids(item: &Item) -> Result<Vec<ContactId>, StoreError> {
    match item.get(CONTACTS) {
        None => Ok(vec![]),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(id) => {
                    ContactId::parse(id.as_str()).map_err(|_| malformed("bad contact id"))
                }
                _ => Err(malformed("contact list holds a non-string")),
            })
            .collect(),
        Some(_) => Err(malformed("contacts is not a list")),
    }
}

pub(super) fn contact_list(ids: &[ContactId]) -> AttributeValue {
    AttributeValue::L(ids.iter().map(|c| s(c.as_str())).collect())
}

pub(super) fn decode_division(item: &Item) -> Result<Division, StoreError> {
    let sk = req_str(item, SK)?;
    let id = sk
        .strip_prefix(keys::DIVISION_SK_PREFIX)
        .ok_or_else(|| malformed("division sort key"))?;
    Ok(Division {
        division_id: DivisionId::parse(id).map_err(|_| malformed("bad division id"))?,
        name: text(item, DIV_NAME),
        email_from: Email::parse(req_str(item, DIV_EMAIL_FROM)?)
            .map_err(|_| malformed("bad email_from"))?,
        last_bulk_sent_at: time_attr(item, DIV_LAST_BULK)?,
        first_synced_at: time_attr(item, DIV_FIRST_SYNCED)?,
    })
}

/// The sync item of a contact (everything but the system-kept fields), keyed in its
/// division's shard. Written whole by every sync, so it never carries system fields.
pub(super) fn encode_sync_item(tenant: &portal_core::domain::TenantId, c: &ContactRecord) -> Item {
    let shard = keys::shard_of(&c.contact_id);
    let mut item = key(
        keys::partition_pk(tenant, &c.division_id, shard),
        keys::contact_sk(&c.contact_id),
    );
    let mut put = |k: &str, v: AttributeValue| {
        item.insert(k.to_owned(), v);
    };
    put(ACCOUNT, s(c.account_id.as_str()));
    put(NAME, s(&c.contact_name));
    if let Some(e) = &c.email {
        put(EMAIL, s(e.as_str()));
        // The address index (`gsi1`): registration finds every contact of the address.
        put(GSI1PK, s(keys::address_gsi_pk(tenant, &e.normalized())));
        put(GSI1SK, s(c.contact_id.as_str()));
    }
    put(PHONE, s(&c.phone));
    put(BILLING, AttributeValue::Bool(c.billing));
    put(ACC_NUMBER, s(&c.account_number));
    put(ACC_NAME, s(&c.account_name));
    put(CLASS, s(&c.account_class));
    put(BILL_GROUP, s(&c.bill_group));
    put(SOURCE, s(&c.account_source));
    put(SITE_SOURCE, s(&c.site_source));
    put(ACTIVE, AttributeValue::Bool(c.active_services));
    put(BALANCE, AttributeValue::N(c.balance_due_cents.to_string()));
    put(AUTOPAY, AttributeValue::Bool(c.autopay));
    if let Some(k) = &c.portal_key {
        put(PORTAL_KEY, s(k.as_str()));
    }
    item
}

/// A stored portal key, if the item has one.
pub(super) fn portal_key(item: &Item) -> Result<Option<PortalKey>, StoreError> {
    get_str(item, PORTAL_KEY)
        .map(|k| PortalKey::parse(k).map_err(|_| malformed("bad portal key")))
        .transpose()
}

/// Decodes a sync item of `division` into a record with fresh system fields.
fn decode_sync_item(
    item: &Item,
    division: &DivisionId,
    contact: ContactId,
) -> Result<ContactRecord, StoreError> {
    let balance = match item.get(BALANCE) {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| malformed("bad balance"))?,
        _ => 0,
    };
    let email = get_str(item, EMAIL)
        .map(|e| Email::parse(e).map_err(|_| malformed("bad email")))
        .transpose()?;
    Ok(ContactRecord {
        contact_id: contact,
        account_id: account_id(item, ACCOUNT)?,
        division_id: division.clone(),
        contact_name: text(item, NAME),
        email,
        phone: text(item, PHONE),
        billing: flag(item, BILLING),
        account_number: text(item, ACC_NUMBER),
        account_name: text(item, ACC_NAME),
        account_class: text(item, CLASS),
        bill_group: text(item, BILL_GROUP),
        account_source: text(item, SOURCE),
        site_source: text(item, SITE_SOURCE),
        active_services: flag(item, ACTIVE),
        balance_due_cents: balance,
        autopay: flag(item, AUTOPAY),
        portal_status: PortalStatus::NotSent,
        last_invited_at: None,
        last_login: None,
        portal_key: portal_key(item)?,
        invitations_sent: 0,
    })
}

/// Applies a state item's system fields to its contact.
fn apply_state(item: &Item, c: &mut ContactRecord) -> Result<(), StoreError> {
    if let Some(st) = get_str(item, STATUS) {
        c.portal_status = PortalStatus::parse(st).ok_or_else(|| malformed("bad portal status"))?;
    }
    c.last_invited_at = time_attr(item, INVITED_AT)?;
    c.last_login = time_attr(item, LAST_LOGIN)?;
    c.invitations_sent = u32::try_from(get_num(item, INVITATIONS_SENT)?).unwrap_or(u32::MAX);
    Ok(())
}

/// Which kind of contact-partition item a sort key names.
enum ContactSk<'a> {
    Sync(&'a str),
    State(&'a str),
}

fn parse_contact_sk(sk: &str) -> Result<ContactSk<'_>, StoreError> {
    let rest = sk
        .strip_prefix(CONTACT_SK_PREFIX)
        .ok_or_else(|| malformed("contact sort key"))?;
    Ok(match rest.strip_suffix(STATE_SK_SUFFIX) {
        Some(id) => ContactSk::State(id),
        None => ContactSk::Sync(rest),
    })
}

/// Joins the items of one contact partition, read in sort-key order, into records.
///
/// A contact's state item (`C#{id}#ST`) sorts immediately after its sync item (`C#{id}`), so
/// one pending record is all the state there is: a record is complete when its state item
/// arrives or when the next contact (or the end of the partition) shows it has none. Pages
/// may split a pair; the merger lives across pages. A state item without a sync item (left
/// by an interrupted delete) is ignored.
pub(super) struct Merger {
    division: DivisionId,
    pending: Option<ContactRecord>,
}

impl Merger {
    pub fn new(division: DivisionId) -> Self {
        Self {
            division,
            pending: None,
        }
    }

    /// Feeds the next item; returns a record completed by it, if any.
    pub fn push(&mut self, item: &Item) -> Result<Option<ContactRecord>, StoreError> {
        match parse_contact_sk(req_str(item, SK)?)? {
            ContactSk::Sync(id) => {
                let id = ContactId::parse(id).map_err(|_| malformed("bad contact id"))?;
                let next = decode_sync_item(item, &self.division, id)?;
                Ok(self.pending.replace(next))
            }
            ContactSk::State(id) => match self.pending.take() {
                Some(mut c) if c.contact_id.as_str() == id => {
                    apply_state(item, &mut c)?;
                    Ok(Some(c))
                }
                // An orphan state item: the pending record (if any) is another contact and
                // can have no state of its own after this point.
                other => Ok(other),
            },
        }
    }

    /// The last record, at the end of the partition.
    pub fn finish(&mut self) -> Option<ContactRecord> {
        self.pending.take()
    }
}

/// Builds `ProjectionExpression` and its `ExpressionAttributeNames` from attribute names.
pub(super) fn projection(names: &[&str]) -> (String, HashMap<String, String>) {
    let mut expr = Vec::with_capacity(names.len());
    let mut map = HashMap::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let placeholder = format!("#p{i}");
        expr.push(placeholder.clone());
        map.insert(placeholder, (*n).to_owned());
    }
    (expr.join(", "), map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_core::domain::TenantId;

    fn record(id: &str) -> ContactRecord {
        ContactRecord {
            contact_id: ContactId::parse(id).unwrap(),
            account_id: AccountId::parse("a1").unwrap(),
            division_id: DivisionId::parse("d1").unwrap(),
            contact_name: "Jane".into(),
            email: Some(Email::parse("jane@example.com").unwrap()),
            phone: "555".into(),
            billing: true,
            account_number: "1001".into(),
            account_name: "Doe".into(),
            account_class: "Residential".into(),
            bill_group: "A".into(),
            account_source: "Web".into(),
            site_source: "Field".into(),
            active_services: true,
            balance_due_cents: -250,
            autopay: false,
            portal_status: PortalStatus::NotSent,
            last_invited_at: None,
            last_login: None,
            portal_key: Some(PortalKey::parse("ABCD-EFGH-2345").unwrap()),
            invitations_sent: 0,
        }
    }

    fn state(id: &str, status: &str) -> Item {
        let mut item = key("p".into(), keys::state_sk(&ContactId::parse(id).unwrap()));
        item.insert(STATUS.into(), s(status));
        item
    }

    #[test]
    fn the_merger_joins_state_to_its_contact_and_defaults_the_rest_to_not_sent() {
        let t = TenantId::parse("t").unwrap();
        let d = DivisionId::parse("d1").unwrap();
        let mut m = Merger::new(d);
        let mut out = vec![];
        for item in [
            encode_sync_item(&t, &record("a")),
            state("a", "accepted"),
            state("orphan", "pending"),
            encode_sync_item(&t, &record("b")),
            encode_sync_item(&t, &record("c")),
            state("c", "pending"),
        ] {
            out.extend(m.push(&item).unwrap());
        }
        out.extend(m.finish());
        let got: Vec<_> = out
            .iter()
            .map(|c| (c.contact_id.as_str(), c.portal_status))
            .collect();
        assert_eq!(
            got,
            [
                ("a", PortalStatus::Accepted),
                ("b", PortalStatus::NotSent),
                ("c", PortalStatus::Pending)
            ]
        );
        assert_eq!(out[1], record("b"));
    }
}
