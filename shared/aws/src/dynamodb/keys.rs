//! Key construction, write sharding and list cursors.
//!
//! Every key starts with `T#{tenant}`, and every function here takes the tenant from the
//! caller (ultimately the token), never from stored or client-supplied data. Ids cannot
//! contain `#` (see `domain::ids`), so no two distinct (tenant, id...) tuples build the same key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use portal_core::domain::{
    AccountId, CampaignId, ContactId, DivisionId, LocalDate, RecurringId, RequestId, TenantId,
};
use portal_core::ports::StoreError;

/// Write shards per division: a division's contacts are spread over this many partitions.
pub(crate) const SHARDS: u8 = 16;

/// Sort key of an account item and of a contact locator (one item per partition).
pub(super) const ACCOUNT_SK: &str = "A";
pub(super) const LOCATOR_SK: &str = "L";
pub(super) const DIVISION_SK_PREFIX: &str = "DIV#";
pub(super) const CONTACT_SK_PREFIX: &str = "C#";
pub(super) const STATE_SK_SUFFIX: &str = "#ST";
pub(super) const SUPPRESSION_SK_PREFIX: &str = "E#";

/// 64-bit FNV-1a: stable across processes, platforms and releases (unlike `std`'s hasher),
/// which a shard assignment must be — a contact's shard is part of its key.
pub(super) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(super) fn shard_of(contact: &ContactId) -> u8 {
    // The remainder is < SHARDS (16), so the cast cannot truncate.
    (fnv1a(contact.as_str()) % u64::from(SHARDS)) as u8
}

/// Partition of a tenant's divisions.
pub(super) fn tenant_pk(t: &TenantId) -> String {
    format!("T#{t}")
}

pub(super) fn division_sk(d: &DivisionId) -> String {
    format!("{DIVISION_SK_PREFIX}{d}")
}

pub(super) fn account_pk(t: &TenantId, a: &AccountId) -> String {
    format!("T#{t}#ACC#{a}")
}

/// The account id in an account item's partition key, if it is one of `t`'s.
pub(super) fn account_of_pk<'a>(t: &TenantId, pk: &'a str) -> Option<&'a str> {
    pk.strip_prefix("T#")?
        .strip_prefix(t.as_str())?
        .strip_prefix("#ACC#")
}

/// The contact id in a locator's partition key, if it is one of `t`'s.
pub(super) fn contact_of_locator_pk<'a>(t: &TenantId, pk: &'a str) -> Option<&'a str> {
    pk.strip_prefix("T#")?
        .strip_prefix(t.as_str())?
        .strip_prefix("#C#")
}

pub(super) fn locator_pk(t: &TenantId, c: &ContactId) -> String {
    format!("T#{t}#C#{c}")
}

/// One write shard of a division: where its contacts' sync and state items live.
pub(super) fn partition_pk(t: &TenantId, d: &DivisionId, shard: u8) -> String {
    format!("T#{t}#D#{d}#S#{shard:02}")
}

pub(super) fn contact_sk(c: &ContactId) -> String {
    format!("{CONTACT_SK_PREFIX}{c}")
}

pub(super) fn state_sk(c: &ContactId) -> String {
    format!("{CONTACT_SK_PREFIX}{c}{STATE_SK_SUFFIX}")
}

/// The partition of a tenant's filter-value summaries (see `filter_values`).
pub(super) fn filter_values_pk(t: &TenantId) -> String {
    format!("T#{t}#FV")
}

/// One summary shard of a division's filter values. Ids hold no `#`, so the prefix
/// `{division}#` names exactly one division's shards.
pub(super) fn filter_values_sk(d: &DivisionId, shard: u8) -> String {
    format!("{}{shard:02}", filter_values_prefix(d))
}

pub(super) fn filter_values_prefix(d: &DivisionId) -> String {
    format!("{d}#")
}

pub(super) fn suppression_pk(t: &TenantId) -> String {
    format!("T#{t}#SUP")
}

pub(super) fn suppression_sk(email_normalized: &str) -> String {
    format!("{SUPPRESSION_SK_PREFIX}{email_normalized}")
}

/// Longest cursor accepted; anything longer was not made here.
const MAX_CURSOR_LEN: usize = 512;
const CURSOR_VERSION: u8 = 1;

/// What a list cursor says: resume in division `d`, shard `s`, after contact `c` (at the
/// start of the shard when `c` is empty: a page that ran out of items to examine on an empty
/// partition).
/// Only positions — never a key: the partition key is rebuilt from the caller's tenant.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorJson {
    v: u8,
    d: String,
    s: u8,
    c: String,
}

/// A parsed cursor, checked against the query it is used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Position {
    /// Index into the query's `division_ids`.
    pub division_index: usize,
    pub shard: u8,
    /// Resume strictly after this contact; `None`: at the start of the shard.
    pub after: Option<ContactId>,
}

pub(super) fn encode_cursor(division: &DivisionId, shard: u8, after: Option<&ContactId>) -> String {
    let json = serde_json::json!({
        "v": CURSOR_VERSION,
        "d": division.as_str(),
        "s": shard,
        "c": after.map_or("", ContactId::as_str),
    });
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// Parses a cursor made by [`encode_cursor`] for a query over `divisions`. Anything else —
/// bad base64 or JSON, an unknown version, a division outside the query, a shard out of
/// range, an id outside the id alphabet — is [`StoreError::InvalidCursor`].
pub(super) fn decode_cursor(raw: &str, divisions: &[DivisionId]) -> Result<Position, StoreError> {
    let invalid = |why: &str| StoreError::InvalidCursor(why.to_owned());
    if raw.is_empty() || raw.len() > MAX_CURSOR_LEN {
        return Err(invalid("cursor has an impossible length"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| invalid("cursor is not valid base64"))?;
    let json: CursorJson =
        serde_json::from_slice(&bytes).map_err(|_| invalid("cursor is malformed"))?;
    if json.v != CURSOR_VERSION {
        return Err(invalid("cursor version is not supported"));
    }
    let division_index = divisions
        .iter()
        .position(|d| d.as_str() == json.d)
        .ok_or_else(|| invalid("cursor does not belong to this query"))?;
    if json.s >= SHARDS {
        return Err(invalid("cursor is malformed"));
    }
    let after = match json.c.as_str() {
        "" => None,
        c => Some(ContactId::parse(c).map_err(|_| invalid("cursor is malformed"))?),
    };
    Ok(Position {
        division_index,
        shard: json.s,
        after,
    })
}

/// The sort key prefix of a campaign's invitations.
pub(super) const INVITATION_SK_PREFIX: &str = "INV#";

pub(super) fn campaign_pk(t: &TenantId, c: &CampaignId) -> String {
    format!("T#{t}#CMP#{c}")
}

pub(super) fn invitation_sk(c: &ContactId) -> String {
    format!("{INVITATION_SK_PREFIX}{c}")
}

/// Partition of a hand-picked campaign's selection: its contact ids in chunks, the sort key
/// the chunk's number ([`selection_sk`]).
pub(super) fn selection_pk(t: &TenantId, c: &CampaignId) -> String {
    format!("T#{t}#SEL#{c}")
}

/// Sort key of chunk `n` of a selection: fixed width, so key order is chunk order.
pub(super) fn selection_sk(n: usize) -> String {
    format!("{n:04}")
}

/// Partition listing a division's campaigns (one item per campaign, sk = campaign id).
pub(super) fn division_campaigns_pk(t: &TenantId, d: &DivisionId) -> String {
    format!("T#{t}#DCMP#{d}")
}

pub(super) fn idempotency_pk(t: &TenantId, key: &str) -> String {
    format!("T#{t}#IDEM#{}", hex(&Sha256::digest(key.as_bytes())))
}

/// Lowercase hexadecimal of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The tenant and campaign of a campaign partition key `T#{t}#CMP#{c}` (ids hold no `#`).
pub(super) fn campaign_of_pk(pk: &str) -> Option<(&str, &str)> {
    pk.strip_prefix("T#")?.split_once("#CMP#")
}

// --- Registration (see `registration`) ------------------------------------------------

/// Sort key of the one-item partitions of registration: logins, confirmations.
pub(super) const LOGIN_SK: &str = "LOGIN";
pub(super) const CONFIRMATION_SK: &str = "CONF";

/// `gsi1pk` of an account item: the tenant's account number index.
pub(super) fn account_number_gsi_pk(t: &TenantId, number: &str) -> String {
    format!("T#{t}#ANUM#{number}")
}

/// `gsi1pk` of an invitation item: its token's hash (the link names no tenant).
pub(super) fn token_gsi_pk(token_hash: &[u8; 32]) -> String {
    format!("TOK#{}", hex(token_hash))
}

/// `gsi1pk` of a contact sync item with an address: the tenant's contacts by normalized
/// address (the last component: any character is safe in it).
pub(super) fn address_gsi_pk(t: &TenantId, email_normalized: &str) -> String {
    format!("T#{t}#EMAIL#{email_normalized}")
}

/// The division of a (division, shard) partition key of `t`'s, if it is one.
pub(super) fn division_of_partition_pk<'a>(t: &TenantId, pk: &'a str) -> Option<&'a str> {
    pk.strip_prefix("T#")?
        .strip_prefix(t.as_str())?
        .strip_prefix("#D#")?
        .rsplit_once("#S#")
        .map(|(d, _)| d)
}

/// A login, by the normalized address (the last component: any character is safe in it).
pub(super) fn login_pk(t: &TenantId, email_normalized: &str) -> String {
    format!("T#{t}#LOGIN#{email_normalized}")
}

pub(super) fn confirmation_pk(t: &TenantId, token_hash: &[u8; 32]) -> String {
    format!("T#{t}#CONF#{}", hex(token_hash))
}

/// A rate-limit counter's partition: the key hashed (any text, any length is safe).
pub(super) fn rate_limit_pk(t: &TenantId, key: &str) -> String {
    format!("T#{t}#RL#{}", hex(&Sha256::digest(key.as_bytes())))
}

/// The partition of a tenant's sign-up requests (sk = request id, which sorts by time).
pub(super) fn requests_pk(t: &TenantId) -> String {
    format!("T#{t}#REQ")
}

const REQUEST_CURSOR_PREFIX: &str = "req1:";

/// A request list cursor: resume (newest first) before this request. A position only: the
/// partition is always the caller's tenant's.
pub(super) fn encode_request_cursor(after: &RequestId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{REQUEST_CURSOR_PREFIX}{after}"))
}

/// Parses a cursor made by [`encode_request_cursor`]; anything else is
/// [`StoreError::InvalidCursor`].
pub(super) fn decode_request_cursor(raw: &str) -> Result<RequestId, StoreError> {
    let invalid = || StoreError::InvalidCursor("cursor is malformed".into());
    if raw.is_empty() || raw.len() > 100 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix(REQUEST_CURSOR_PREFIX)
        .ok_or_else(invalid)?;
    RequestId::parse(id).map_err(|_| invalid())
}

// --- Recurring invitations (see `recurring`) --------------------------------------------

/// Sort key prefix of a recurring setting in its tenant's partition (next to `DIV#`, `TPL#`).
pub(super) const SETTING_SK_PREFIX: &str = "REC#";

/// `gsi1pk` of every enabled setting of every tenant: what a scheduler on one machine lists.
pub(super) const ENABLED_SETTINGS_GSI_PK: &str = "REC#ENABLED";

pub(super) fn setting_sk(id: &RecurringId) -> String {
    format!("{SETTING_SK_PREFIX}{id}")
}

/// `gsi1sk` of an enabled setting: its tenant and id (index order: tenant, then id).
pub(super) fn enabled_setting_gsi_sk(t: &TenantId, id: &RecurringId) -> String {
    format!("T#{t}#{id}")
}

/// The tenant of a tenant partition key `T#{t}` (and nothing longer).
pub(super) fn tenant_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("T#").filter(|t| !t.contains('#'))
}

/// The partition of a setting's runs; the sort key is the run's local date (`YYYY-MM-DD`,
/// which sorts as the dates do).
pub(super) fn runs_pk(t: &TenantId, setting: &RecurringId) -> String {
    format!("T#{t}#RUN#{setting}")
}

const RUN_CURSOR_VERSION: u8 = 1;

/// What a run list cursor says: resume (newest first) before day `d` of setting `s`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunCursorJson {
    v: u8,
    s: String,
    d: String,
}

/// A run list cursor: a position only (the partition is always rebuilt from the caller's
/// tenant and setting), naming its setting so that it is refused by another setting's list.
pub(super) fn encode_run_cursor(setting: &RecurringId, before: &str) -> String {
    let json = serde_json::json!({"v": RUN_CURSOR_VERSION, "s": setting.as_str(), "d": before});
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// Parses a cursor made by [`encode_run_cursor`] for `setting`'s runs: the date to resume
/// before. Anything else — bad base64 or JSON, another version, another setting, a date not
/// written `YYYY-MM-DD` — is [`StoreError::InvalidCursor`].
pub(super) fn decode_run_cursor(raw: &str, setting: &RecurringId) -> Result<String, StoreError> {
    let invalid = |why: &str| StoreError::InvalidCursor(why.to_owned());
    if raw.is_empty() || raw.len() > MAX_CURSOR_LEN {
        return Err(invalid("cursor has an impossible length"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| invalid("cursor is not valid base64"))?;
    let json: RunCursorJson =
        serde_json::from_slice(&bytes).map_err(|_| invalid("cursor is malformed"))?;
    if json.v != RUN_CURSOR_VERSION {
        return Err(invalid("cursor version is not supported"));
    }
    if json.s != setting.as_str() {
        return Err(invalid("cursor does not belong to this query"));
    }
    match LocalDate::parse(&json.d) {
        Ok(d) if d.to_string() == json.d => Ok(json.d),
        _ => Err(invalid("cursor is malformed")),
    }
}

/// Sort key of a tenant's sender settings, in the tenant's partition.
pub(super) const SENDERS_SK: &str = "SENDERS";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn div(s: &str) -> DivisionId {
        DivisionId::parse(s).unwrap()
    }

    proptest! {
        /// A list cursor from outside — any text, any base64url of any bytes, or a real
        /// cursor with bytes changed — is a position or `InvalidCursor`, never a panic.
        #[test]
        fn a_cursor_of_any_bytes_is_a_position_or_refused(
            raw in prop_oneof![
                ".{0,600}",
                prop::collection::vec(any::<u8>(), 0..400).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
                (0usize..200, any::<u8>()).prop_map(|(at, byte)| {
                    let c = ContactId::parse("c-1").unwrap();
                    let mut c = encode_cursor(&div("d2"), 3, Some(&c))
                        .into_bytes();
                    let at = at % c.len();
                    c[at] = byte;
                    String::from_utf8_lossy(&c).into_owned()
                }),
            ]
        ) {
            match decode_cursor(&raw, &[div("d1"), div("d2")]) {
                Ok(p) => prop_assert!(p.division_index < 2 && p.shard < SHARDS),
                Err(StoreError::InvalidCursor(_)) => {}
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }

    #[test]
    fn a_partition_key_names_its_division_for_its_own_tenant_only() {
        let t = TenantId::parse("t1").unwrap();
        let pk = partition_pk(&t, &div("oak-hills"), 7);
        assert_eq!(division_of_partition_pk(&t, &pk), Some("oak-hills"));
        let other = TenantId::parse("t11").unwrap();
        assert_eq!(division_of_partition_pk(&other, &pk), None);
        assert_eq!(division_of_partition_pk(&t, "T#t1#ACC#a1"), None);
        assert_eq!(
            address_gsi_pk(&t, "pat@example.org"),
            "T#t1#EMAIL#pat@example.org"
        );
    }

    #[test]
    fn a_state_item_sorts_right_after_its_contact_and_before_the_next_contact() {
        let ids = ["a", "a-1", "a.b", "a0", "a:z", "aZ", "a_", "b"]; // in id order
        let mut sks: Vec<String> = ids
            .iter()
            .flat_map(|i| {
                let c = ContactId::parse(*i).unwrap();
                [contact_sk(&c), state_sk(&c)]
            })
            .collect();
        let expected = sks.clone();
        sks.sort();
        assert_eq!(sks, expected);
    }

    #[test]
    fn shards_are_stable_and_spread_contacts() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        let mut seen = [0u32; SHARDS as usize];
        for i in 0..1600 {
            seen[shard_of(&ContactId::parse(format!("c{i}")).unwrap()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (50..150).contains(n)), "{seen:?}");
    }

    #[test]
    fn a_cursor_round_trips_within_its_query() {
        let divs = [div("d1"), div("d2")];
        let c = encode_cursor(&divs[1], 7, Some(&ContactId::parse("c-9").unwrap()));
        let p = decode_cursor(&c, &divs).unwrap();
        assert_eq!(p.division_index, 1);
        assert_eq!(p.shard, 7);
        assert_eq!(p.after.unwrap().as_str(), "c-9");
        let p = decode_cursor(&encode_cursor(&divs[0], 15, None), &divs).unwrap();
        assert_eq!((p.division_index, p.shard, p.after), (0, 15, None));
    }

    #[test]
    fn request_cursors_round_trip_and_reject_forgeries() {
        let id = RequestId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            decode_request_cursor(&encode_request_cursor(&id)).unwrap(),
            id
        );
        for bad in [
            "".to_owned(),
            "!!".to_owned(),
            URL_SAFE_NO_PAD.encode("req1:xyz"),
            URL_SAFE_NO_PAD.encode("req2:0123456789abcdef0123456789abcdef"),
            URL_SAFE_NO_PAD.encode(r#"{"v":1,"d":"d1","s":0,"c":"x"}"#),
        ] {
            assert!(
                matches!(
                    decode_request_cursor(&bad),
                    Err(StoreError::InvalidCursor(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn run_cursors_round_trip_within_their_setting_and_reject_forgeries() {
        let r1 = RecurringId::parse("weekly").unwrap();
        let r2 = RecurringId::parse("daily").unwrap();
        let c = encode_run_cursor(&r1, "2026-11-02");
        assert_eq!(decode_run_cursor(&c, &r1).unwrap(), "2026-11-02");
        let forge = |j: &str| URL_SAFE_NO_PAD.encode(j);
        for bad in [
            c.clone() + "A",
            "".to_owned(),
            "!!".to_owned(),
            encode_run_cursor(&r2, "2026-11-02"),
            forge(r#"{"v":2,"s":"weekly","d":"2026-11-02"}"#),
            forge(r#"{"v":1,"s":"weekly","d":"2026-13-02"}"#),
            forge(r#"{"v":1,"s":"weekly","d":"2026-11-2"}"#),
            forge(r#"{"v":1,"s":"weekly","d":"2026-11-02\u0000"}"#),
            forge(r##"{"v":1,"s":"weekly","d":"2026-11-02","pk":"T#other"}"##),
            "A".repeat(600),
        ] {
            assert!(
                matches!(
                    decode_run_cursor(&bad, &r1),
                    Err(StoreError::InvalidCursor(_))
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn setting_keys_name_their_tenant() {
        let t = TenantId::parse("t1").unwrap();
        let r = RecurringId::parse("weekly").unwrap();
        assert_eq!(tenant_of_pk(&tenant_pk(&t)), Some("t1"));
        assert_eq!(tenant_of_pk(&runs_pk(&t, &r)), None);
        assert_eq!(setting_sk(&r), "REC#weekly");
        assert_eq!(enabled_setting_gsi_sk(&t, &r), "T#t1#weekly");
    }

    #[test]
    fn campaign_partitions_name_their_tenant_and_campaign() {
        let t = TenantId::parse("t1").unwrap();
        let id = "0123456789abcdef0123456789abcdef";
        let c = CampaignId::parse(id).unwrap();
        assert_eq!(campaign_of_pk(&campaign_pk(&t, &c)), Some(("t1", id)));
        assert_eq!(campaign_of_pk("T#t1#ACC#a"), None);
    }

    #[test]
    fn forged_or_foreign_cursors_are_rejected() {
        let divs = [div("d1")];
        let forge = |j: &str| URL_SAFE_NO_PAD.encode(j);
        for bad in [
            "".to_owned(),
            "!!!".to_owned(),
            forge("not json"),
            forge(r#"{"v":2,"d":"d1","s":0,"c":"x"}"#),
            forge(r#"{"v":1,"d":"other","s":0,"c":"x"}"#),
            forge(r#"{"v":1,"d":"d1","s":16,"c":"x"}"#),
            forge(r#"{"v":1,"d":"d1","s":0,"c":"x#ST"}"#),
            forge(r##"{"v":1,"d":"d1","s":0,"c":"x","pk":"T#other"}"##),
            "A".repeat(600),
        ] {
            assert!(
                matches!(
                    decode_cursor(&bad, &divs),
                    Err(StoreError::InvalidCursor(_))
                ),
                "{bad:?} should be rejected"
            );
        }
    }
}
