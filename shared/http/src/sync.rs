//! `POST /v1/sync/accounts` and `DELETE /v1/accounts/{account_id}`.
//!
//! A sync body is a JSON array of accounts (`application/json`) or one account per line
//! (`application/x-ndjson`). It is read once into [`Bytes`] (up to
//! [`SYNC_BODY_LIMIT`](super::SYNC_BODY_LIMIT)) and parsed record by record straight into
//! domain [`Account`]s — for an array through a serde `SeqAccess` visitor, so no
//! intermediate `Vec` of wire records or `serde_json::Value` tree is ever held. Every record
//! is validated before anything is written: the first bad one is a 422 naming its array
//! index (0-based) or NDJSON line (1-based) and the field, and the store is not touched.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::Deserialize;
use time::OffsetDateTime;

use portal_core::domain::{
    Account, AccountId, ContactId, ContactInput, DivisionId, DomainError, Email, PortalKey,
};
use portal_core::ports::SyncReport;
use portal_core::usecases;
use portal_core::usecases::sync::MAX_ACCOUNTS_PER_SYNC;

use super::auth::{perm, Authorized};
use super::divisions::path_id;
use super::error::{ApiError, RecordPosition};
use super::json::{body_rejection, integer, is_json, json_error, media_type};
use super::AppState;

/// Media types read as NDJSON.
pub const NDJSON_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
];

/// One account on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountWire {
    pub account_id: String,
    pub division_id: String,
    pub number: String,
    pub name: String,
    pub class: String,
    pub bill_group: String,
    pub source: String,
    pub site_source: String,
    pub active_services: bool,
    #[serde(deserialize_with = "integer::exact")]
    pub balance_due_cents: i64,
    pub autopay: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_login: Option<OffsetDateTime>,
    /// The company's own portal key; absent, `null` or blank: keep the stored one (or
    /// generate one for a new account).
    #[serde(default)]
    pub portal_key: Option<String>,
    pub contacts: Vec<ContactWire>,
}

/// One contact on the wire. `email` absent, `null` or blank means "no address".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactWire {
    pub contact_id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: String,
    pub billing: bool,
}

/// A record the domain refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub field: String,
    pub reason: String,
}

impl RecordError {
    fn new(field: impl Into<String>, e: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: e.to_string(),
        }
    }
}

/// The field name a domain error is about, when it says.
fn domain_field(e: &DomainError) -> Option<&'static str> {
    match e {
        DomainError::InvalidField { field, .. } => Some(field),
        DomainError::InvalidId { kind, .. } => Some(kind),
        DomainError::InvalidEmail { .. } => None,
    }
}

impl ContactWire {
    fn into_domain(self, i: usize) -> Result<ContactInput, RecordError> {
        let at = |f: &str| format!("contacts[{i}].{f}");
        let contact_id =
            ContactId::parse(self.contact_id).map_err(|e| RecordError::new(at("contact_id"), e))?;
        let email = match self.email {
            Some(raw) if !raw.trim().is_empty() => {
                Some(Email::parse(&raw).map_err(|e| RecordError::new(at("email"), e))?)
            }
            _ => None,
        };
        ContactInput::new(contact_id, self.name, email, self.phone, self.billing).map_err(|e| {
            let field = match domain_field(&e) {
                Some("contact name") => "name",
                Some(f) => f,
                None => "contact",
            };
            RecordError::new(at(field), e)
        })
    }
}

impl AccountWire {
    /// Builds the domain account, naming the first bad field.
    pub fn into_domain(self) -> Result<Account, RecordError> {
        let account_id =
            AccountId::parse(self.account_id).map_err(|e| RecordError::new("account_id", e))?;
        let division_id =
            DivisionId::parse(self.division_id).map_err(|e| RecordError::new("division_id", e))?;
        let contacts = self
            .contacts
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_domain(i))
            .collect::<Result<Vec<_>, _>>()?;
        let portal_key = match self.portal_key.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() => {
                Some(PortalKey::parse(k).map_err(|e| RecordError::new("portal_key", e))?)
            }
            _ => None,
        };
        Account::new(
            account_id,
            division_id,
            self.number,
            self.name,
            self.class,
            self.bill_group,
            self.source,
            self.site_source,
            self.active_services,
            self.balance_due_cents,
            self.autopay,
            self.last_login,
            contacts,
        )
        .map(|a| a.with_portal_key(portal_key))
        .map_err(|e| RecordError::new(domain_field(&e).unwrap_or("account"), e))
    }
}

/// Checks request-wide rules as records arrive: the record cap, and that no account or
/// contact id appears twice (the result of such a request would depend on write order).
#[derive(Default)]
struct Batch {
    accounts: Vec<Account>,
    account_ids: HashMap<AccountId, RecordPosition>,
    contact_ids: HashMap<ContactId, RecordPosition>,
}

impl Batch {
    fn push(&mut self, at: RecordPosition, account: Account) -> Result<(), ApiError> {
        if self.accounts.len() >= MAX_ACCOUNTS_PER_SYNC {
            return Err(ApiError::Unprocessable(format!(
                "at most {MAX_ACCOUNTS_PER_SYNC} accounts per request; split the sync"
            )));
        }
        if let Some(first) = self.account_ids.insert(account.account_id.clone(), at) {
            return Err(invalid(
                at,
                RecordError::new(
                    "account_id",
                    format!("{} also appears at {first}", account.account_id),
                ),
            ));
        }
        for (i, c) in account.contacts.iter().enumerate() {
            if let Some(first) = self.contact_ids.insert(c.contact_id.clone(), at) {
                if first != at {
                    return Err(invalid(
                        at,
                        RecordError::new(
                            format!("contacts[{i}].contact_id"),
                            format!("{} also appears at {first}", c.contact_id),
                        ),
                    ));
                }
            }
        }
        self.accounts.push(account);
        Ok(())
    }
}

fn invalid(position: RecordPosition, e: RecordError) -> ApiError {
    ApiError::InvalidRecord {
        position,
        field: e.field,
        reason: e.reason,
    }
}

/// Parses a JSON array body element by element into validated accounts.
pub fn parse_json_array(body: &[u8]) -> Result<Vec<Account>, ApiError> {
    // The visitor reports where it was and any domain/batch error through these slots:
    // serde's error type can only carry a message.
    let current = RefCell::new(None::<usize>);
    let refused = RefCell::new(None::<ApiError>);
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = de::Deserializer::deserialize_seq(
        &mut de,
        AccountsVisitor {
            current: &current,
            refused: &refused,
        },
    )
    .and_then(|accounts| de.end().map(|()| accounts));
    match result {
        Ok(batch) => Ok(batch.accounts),
        Err(e) => {
            if let Some(err) = refused.into_inner() {
                return Err(err);
            }
            let context = current.into_inner().map(|i| format!("record {i}"));
            Err(json_error(context.as_deref(), &e))
        }
    }
}

struct AccountsVisitor<'a> {
    current: &'a RefCell<Option<usize>>,
    refused: &'a RefCell<Option<ApiError>>,
}

impl<'de> Visitor<'de> for AccountsVisitor<'_> {
    type Value = Batch;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of accounts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
        let mut batch = Batch::default();
        if let Some(n) = seq.size_hint() {
            batch.accounts.reserve(n.min(MAX_ACCOUNTS_PER_SYNC));
        }
        let mut i = 0usize;
        loop {
            *self.current.borrow_mut() = Some(i);
            let Some(wire) = seq.next_element_seed(WireSeed)? else {
                break;
            };
            let at = RecordPosition::Index(i);
            let pushed = wire
                .into_domain()
                .map_err(|e| invalid(at, e))
                .and_then(|a| batch.push(at, a));
            if let Err(e) = pushed {
                *self.refused.borrow_mut() = Some(e);
                return Err(de::Error::custom("invalid record"));
            }
            i += 1;
        }
        *self.current.borrow_mut() = None;
        Ok(batch)
    }
}

struct WireSeed;

impl<'de> DeserializeSeed<'de> for WireSeed {
    type Value = AccountWire;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<AccountWire, D::Error> {
        AccountWire::deserialize(d)
    }
}

/// Parses an NDJSON body (one account per line; blank lines skipped) into validated accounts.
pub fn parse_ndjson(body: &[u8]) -> Result<Vec<Account>, ApiError> {
    let mut batch = Batch::default();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = RecordPosition::Line(line_no);
        let wire: AccountWire = serde_json::from_slice(line)
            .map_err(|e| json_error(Some(&format!("line {line_no}")), &e))?;
        let account = wire.into_domain().map_err(|e| invalid(at, e))?;
        batch.push(at, account)?;
    }
    Ok(batch.accounts)
}

/// Upserts accounts with their contacts; nothing is written unless every record is valid.
pub async fn accounts(
    caller: Authorized<perm::SyncWrite>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncReport>, ApiError> {
    let media = media_type(&headers).unwrap_or_default();
    let ndjson = NDJSON_TYPES.contains(&media.as_str());
    if !ndjson && !is_json(&media) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send a JSON array (Content-Type: application/json) or NDJSON \
             (Content-Type: application/x-ndjson), not {:?}",
            media
        )));
    }
    let body =
        body.map_err(|r| body_rejection(r, &super::describe_limit(super::SYNC_BODY_LIMIT)))?;
    // Parsing 64 MiB is CPU work: keep it off the async workers.
    let parsed = tokio::task::spawn_blocking(move || {
        if ndjson {
            parse_ndjson(&body)
        } else {
            parse_json_array(&body)
        }
    })
    .await
    .map_err(|e| ApiError::Internal(Box::new(e)))??;
    tracing::info!(tenant = %caller.tenant, accounts = parsed.len(), "sync accepted");
    let report =
        usecases::sync::upsert_accounts(state.store.as_ref(), &caller.tenant, &parsed).await?;
    Ok(Json(report))
}

/// Removes an account and its contacts.
pub async fn delete_account(
    caller: Authorized<perm::SyncWrite>,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = path_id("account_id", path, AccountId::parse)?;
    usecases::sync::delete_account(state.store.as_ref(), &caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, email: &str) -> String {
        format!(
            r#"{{"account_id":"{id}","division_id":"d1","number":"1","name":"A","class":"R",
            "bill_group":"B","source":"S","site_source":"W","active_services":true,
            "balance_due_cents":0,"autopay":false,
            "contacts":[{{"contact_id":"c-{id}","name":"N","email":"{email}","phone":"","billing":true}}]}}"#
        )
    }

    #[test]
    fn a_json_array_parses_into_accounts() {
        let body = format!("[{},{}]", account("a1", "x@y.com"), account("a2", ""));
        let accounts = parse_json_array(body.as_bytes()).unwrap();
        assert_eq!(accounts.len(), 2);
        assert!(accounts[1].contacts[0].email.is_none());
    }

    #[test]
    fn a_bad_email_is_reported_with_its_record_index_and_field() {
        let body = format!("[{},{}]", account("a1", "x@y.com"), account("a2", "nope"));
        match parse_json_array(body.as_bytes()).unwrap_err() {
            ApiError::InvalidRecord {
                position, field, ..
            } => {
                assert_eq!(position, RecordPosition::Index(1));
                assert_eq!(field, "contacts[0].email");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_field_is_a_422_naming_the_record() {
        let body = format!(
            "[{}]",
            account("a1", "x@y.com").replace("\"name\":\"A\"", "\"nam\":\"A\"")
        );
        let err = parse_json_array(body.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, ApiError::Unprocessable(d) if d.contains("record 0") && d.contains("nam")),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_json_is_a_400() {
        let body = format!("[{}", account("a1", "x@y.com"));
        assert!(matches!(
            parse_json_array(body.as_bytes()).unwrap_err(),
            ApiError::BadRequest(_)
        ));
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let body = format!(
            "{}\n\n{}\n",
            account("a1", "x@y.com").replace('\n', " "),
            account("a2", "bad").replace('\n', " ")
        );
        match parse_ndjson(body.as_bytes()).unwrap_err() {
            ApiError::InvalidRecord { position, .. } => {
                assert_eq!(position, RecordPosition::Line(3))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_account_listed_twice_is_refused() {
        let body = format!(
            "[{},{}]",
            account("a1", "x@y.com"),
            account("a1", "x@y.com")
        );
        let err = parse_json_array(body.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            ApiError::InvalidRecord {
                position: RecordPosition::Index(1),
                ..
            }
        ));
    }
}
