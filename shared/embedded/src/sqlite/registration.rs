//! [`RegistrationStore`] and [`Identity`] on SQLite (tables in `schema`, version 5).
//!
//! Every conditional write of the port is one `IMMEDIATE` transaction: SQLite has one writer
//! at a time, so "read, check, write" inside it is as atomic as a DynamoDB condition. A
//! registration through an invitation accepts, in its transaction, every contact of the
//! tenant whose `email_norm` is the address's (index `contacts_by_email`), however many.
//!
//! The identity half keeps an Argon2id hash (OWASP parameters: 19 MiB, 2 passes, 1 lane;
//! PHC string with its own salt) in `logins.password_phc`. Hashing runs on the blocking pool
//! *before* the write connection is taken, so a registration never holds the writer for the
//! ~20 ms a hash costs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use time::OffsetDateTime;

use portal_core::domain::{
    AccountId, CampaignId, CloseReason, ContactId, DivisionId, Email, Login, LoginVia, Password,
    PortalKey, RegistrationRequest, RequestId, RequestStatus, TenantId,
};
use portal_core::ports::{
    AccountKey, ConfirmOutcome, Identity, IdentityError, NewRegistration, Page, RegisterOutcome,
    RegistrationStore, RequestFilter, StoreError, TokenRef, Via,
};

use super::{from_ts, parse_stored, schema, ts, OrStore, SqliteStore, Window};

/// Argon2id with the OWASP Password Storage Cheat Sheet's first configuration.
pub fn argon2() -> Argon2<'static> {
    // 19 MiB, 2 iterations, 1 lane: valid constants, so `new` cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

const LOGIN_COLUMNS: &str =
    "email, name, contact_ids, account_ids, via, confirmed, provisioned, created_at";

fn read_login(op: &'static str, row: &Row<'_>) -> Result<Login, StoreError> {
    let email: String = row.get(0).or_store(op)?;
    let contacts: String = row.get(2).or_store(op)?;
    let accounts: String = row.get(3).or_store(op)?;
    let via: String = row.get(4).or_store(op)?;
    let contact_ids: Vec<String> =
        parse_stored(op, "login contacts", serde_json::from_str(&contacts))?;
    let account_ids: Vec<String> =
        parse_stored(op, "login accounts", serde_json::from_str(&accounts))?;
    Ok(Login {
        email: parse_stored(op, "login email", Email::parse(&email))?,
        name: row.get(1).or_store(op)?,
        contact_ids: contact_ids
            .into_iter()
            .map(|c| parse_stored(op, "login contact", ContactId::parse(c)))
            .collect::<Result<_, _>>()?,
        account_ids: account_ids
            .into_iter()
            .map(|a| parse_stored(op, "login account", AccountId::parse(a)))
            .collect::<Result<_, _>>()?,
        via: parse_stored(op, "login via", LoginVia::parse(&via).ok_or(()))?,
        confirmed: row.get::<_, i64>(5).or_store(op)? != 0,
        provisioned: row.get::<_, i64>(6).or_store(op)? != 0,
        created_at: from_ts(op, Some(row.get(7).or_store(op)?))?
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

fn login_in(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    email_norm: &str,
) -> Result<Option<Login>, StoreError> {
    let mut s = conn
        .prepare_cached(&format!(
            "SELECT {LOGIN_COLUMNS} FROM logins WHERE tenant = ?1 AND email_norm = ?2"
        ))
        .or_store(op)?;
    let mut rows = s.query(params![tenant, email_norm]).or_store(op)?;
    match rows.next().or_store(op)? {
        Some(row) => Ok(Some(read_login(op, row)?)),
        None => Ok(None),
    }
}

/// A confirmation link's row: the login's address, its expiry and when it was used.
fn confirmation_in(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    hash: &[u8; 32],
) -> Result<Option<(String, i64, Option<i64>)>, StoreError> {
    conn.prepare_cached(
        "SELECT email_norm, expires_at, used_at FROM confirmations \
         WHERE tenant = ?1 AND token_hash = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![tenant, hash.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
    .or_store(op)
}

fn ids_json<T: AsRef<str>>(ids: &[T]) -> String {
    serde_json::Value::Array(
        ids.iter()
            .map(|i| serde_json::Value::String(i.as_ref().to_owned()))
            .collect(),
    )
    .to_string()
}

fn accept_contact(conn: &Connection, tenant: &str, contact: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "UPDATE contacts SET portal_status = 2, flags = (flags & ~{m}) | 2 \
         WHERE tenant = ?1 AND contact_id = ?2",
        m = schema::FLAG_STATUS_MASK
    ))?
    .execute(params![tenant, contact])
}

/// The tenant's contacts whose address is `email_norm` (by the index `contacts_by_email`),
/// with their accounts, in contact id order.
fn contacts_with_address(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    email_norm: &str,
) -> Result<Vec<(ContactId, AccountId)>, StoreError> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT contact_id, account_id FROM contacts WHERE tenant = ?1 AND email_norm = ?2 \
             ORDER BY contact_id",
        )
        .and_then(|mut s| {
            s.query_map(params![tenant, email_norm], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .or_store(op)?;
    rows.into_iter()
        .map(|(c, a)| {
            Ok((
                parse_stored(op, "contact_id", ContactId::parse(c))?,
                parse_stored(op, "account_id", AccountId::parse(a))?,
            ))
        })
        .collect()
}

/// Accepts every contact of the tenant with the login's address and names them (and their
/// accounts) in the login; ids end sorted, each once (as the DynamoDB store's sets read).
fn accept_address(
    op: &'static str,
    conn: &Connection,
    tenant: &str,
    login: &mut Login,
) -> Result<(), StoreError> {
    for (contact, account) in contacts_with_address(op, conn, tenant, &login.email.normalized())? {
        accept_contact(conn, tenant, contact.as_str()).or_store(op)?;
        login.contact_ids.push(contact);
        login.account_ids.push(account);
    }
    login.contact_ids.sort();
    login.contact_ids.dedup();
    login.account_ids.sort();
    login.account_ids.dedup();
    Ok(())
}

fn insert_login(conn: &Connection, tenant: &str, login: &Login) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO logins (tenant, email_norm, email, name, contact_ids, account_ids, via, \
         confirmed, provisioned, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        tenant,
        login.email.normalized(),
        login.email.as_str(),
        login.name,
        ids_json(&login.contact_ids),
        ids_json(&login.account_ids),
        login.via.as_str(),
        i64::from(login.confirmed),
        i64::from(login.provisioned),
        ts(login.created_at),
    ])
}

const REQUEST_COLUMNS: &str = "request_id, name, email, phone, address, division_id, \
    account_number, status, close_reason, matched_account_id, matched_contact_id, note, \
    created_at, updated_at";

fn status_columns(s: RequestStatus) -> (&'static str, Option<&'static str>) {
    (s.as_str(), s.close_reason().map(CloseReason::as_str))
}

fn read_request(op: &'static str, row: &Row<'_>) -> Result<RegistrationRequest, StoreError> {
    let s = |i: usize| row.get::<_, String>(i).or_store(op);
    let o = |i: usize| row.get::<_, Option<String>>(i).or_store(op);
    let status = match (s(7)?.as_str(), o(8)?) {
        ("open", _) => RequestStatus::Open,
        ("matched", _) => RequestStatus::Matched,
        ("key_sent", _) => RequestStatus::KeySent,
        ("closed", Some(r)) => RequestStatus::Closed(parse_stored(
            op,
            "close reason",
            CloseReason::parse(&r).ok_or(()),
        )?),
        _ => return Err(StoreError::backend(op, super::Corrupt("request status"))),
    };
    Ok(RegistrationRequest {
        request_id: parse_stored(op, "request_id", RequestId::parse(s(0)?))?,
        name: s(1)?,
        email: parse_stored(op, "request email", Email::parse(&s(2)?))?,
        phone: s(3)?,
        address: s(4)?,
        division_id: parse_stored(op, "division_id", DivisionId::parse(s(5)?))?,
        account_number: o(6)?,
        status,
        matched_account_id: o(9)?
            .map(|a| parse_stored(op, "account_id", AccountId::parse(a)))
            .transpose()?,
        matched_contact_id: o(10)?
            .map(|c| parse_stored(op, "contact_id", ContactId::parse(c)))
            .transpose()?,
        note: o(11)?,
        created_at: from_ts(op, Some(row.get(12).or_store(op)?))?
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        updated_at: from_ts(op, Some(row.get(13).or_store(op)?))?
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

fn encode_request_cursor(after: &RequestId) -> String {
    portal_core::ports::cursor::encode("req1", after.as_str())
}

fn decode_request_cursor(raw: &str) -> Result<RequestId, StoreError> {
    portal_core::ports::cursor::decode("req1", raw)
        .and_then(|id| RequestId::parse(id).ok())
        .ok_or_else(|| StoreError::InvalidCursor("the cursor was not made by this list".into()))
}

#[async_trait]
impl RegistrationStore for SqliteStore {
    async fn get_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Option<PortalKey>, StoreError> {
        const OP: &str = "get_portal_key";
        let (tenant, account) = (tenant.clone(), account.clone());
        self.read(OP, move |conn| {
            let key: Option<Option<String>> = conn
                .prepare_cached(
                    "SELECT portal_key FROM accounts WHERE tenant = ?1 AND account_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), account.as_str()], |r| r.get(0))
                        .optional()
                })
                .or_store(OP)?;
            key.flatten()
                .map(|k| parse_stored(OP, "portal_key", PortalKey::parse(&k)))
                .transpose()
        })
        .await
    }

    async fn set_portal_key(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        key: &PortalKey,
    ) -> Result<bool, StoreError> {
        const OP: &str = "set_portal_key";
        let (tenant, account, key) = (tenant.clone(), account.clone(), key.as_str().to_owned());
        self.write(OP, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let n = tx
                .execute(
                    "UPDATE accounts SET portal_key = ?3 WHERE tenant = ?1 AND account_id = ?2",
                    params![tenant.as_str(), account.as_str(), key],
                )
                .or_store(OP)?;
            tx.execute(
                "UPDATE contacts SET portal_key = ?3 WHERE tenant = ?1 AND account_id = ?2",
                params![tenant.as_str(), account.as_str(), key],
            )
            .or_store(OP)?;
            tx.commit().or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn find_account_by_number(
        &self,
        tenant: &TenantId,
        number: &str,
    ) -> Result<Option<AccountKey>, StoreError> {
        const OP: &str = "find_account_by_number";
        let (tenant, number) = (tenant.clone(), number.to_owned());
        self.read(OP, move |conn| {
            let row: Option<(String, String, String, String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT account_id, division_id, number, name, portal_key FROM accounts \
                     WHERE tenant = ?1 AND number = ?2 ORDER BY account_id LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), number], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()
                })
                .or_store(OP)?;
            let Some((id, division, number, name, Some(key))) = row else {
                return Ok(None);
            };
            let contacts: Vec<(String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT contact_id, email FROM contacts WHERE tenant = ?1 AND account_id = ?2 \
                     ORDER BY contact_id",
                )
                .and_then(|mut s| {
                    s.query_map(params![tenant.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .or_store(OP)?;
            Ok(Some(AccountKey {
                account_id: parse_stored(OP, "account_id", AccountId::parse(id))?,
                division_id: parse_stored(OP, "division_id", DivisionId::parse(division))?,
                number,
                name,
                portal_key: parse_stored(OP, "portal_key", PortalKey::parse(&key))?,
                contacts: contacts
                    .into_iter()
                    .map(|(c, e)| {
                        Ok((
                            parse_stored(OP, "contact_id", ContactId::parse(c))?,
                            e.map(|e| parse_stored(OP, "email", Email::parse(&e)))
                                .transpose()?,
                        ))
                    })
                    .collect::<Result<_, StoreError>>()?,
            }))
        })
        .await
    }

    async fn find_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRef>, StoreError> {
        const OP: &str = "find_token";
        let hash = *token_hash;
        self.read(OP, move |conn| {
            let row: Option<(String, String, String, Option<i64>)> = conn
                .prepare_cached(
                    "SELECT tenant, campaign_id, contact_id, token_used_at FROM invitations \
                     WHERE token_hash = ?1 LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![hash.as_slice()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                })
                .or_store(OP)?;
            row.map(|(t, c, k, used)| {
                Ok(TokenRef {
                    tenant: parse_stored(OP, "tenant", TenantId::parse(t))?,
                    campaign_id: parse_stored(OP, "campaign_id", CampaignId::parse(c))?,
                    contact_id: parse_stored(OP, "contact_id", ContactId::parse(k))?,
                    used_at: from_ts(OP, used)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn register(
        &self,
        tenant: &TenantId,
        registration: &NewRegistration,
        now: OffsetDateTime,
    ) -> Result<RegisterOutcome, StoreError> {
        const OP: &str = "register";
        let (tenant, r) = (tenant.clone(), registration.clone());
        self.write(OP, move |conn| {
            let t = tenant.as_str();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let norm = r.email.normalized();
            let existing = login_in(OP, &tx, t, &norm)?;
            let outcome =
                match &r.via {
                    Via::Invitation { campaign_id } => {
                        let Some(contact) = &r.contact_id else {
                            return Ok(RegisterOutcome::Missing);
                        };
                        let used: Option<Option<i64>> = tx
                            .prepare_cached(
                                "SELECT token_used_at FROM invitations WHERE tenant = ?1 \
                             AND campaign_id = ?2 AND contact_id = ?3",
                            )
                            .and_then(|mut s| {
                                s.query_row(
                                    params![t, campaign_id.as_str(), contact.as_str()],
                                    |r| r.get(0),
                                )
                                .optional()
                            })
                            .or_store(OP)?;
                        match used {
                            None => return Ok(RegisterOutcome::Missing),
                            Some(Some(_)) => return Ok(RegisterOutcome::TokenUsed),
                            Some(None) => {}
                        }
                        if accept_contact(&tx, t, contact.as_str()).or_store(OP)? == 0 {
                            return Ok(RegisterOutcome::Missing);
                        }
                        tx.execute(
                            "UPDATE invitations SET token_used_at = ?4 WHERE tenant = ?1 \
                         AND campaign_id = ?2 AND contact_id = ?3",
                            params![t, campaign_id.as_str(), contact.as_str(), ts(now)],
                        )
                        .or_store(OP)?;
                        match existing {
                            None => {
                                let mut login = Login {
                                    email: r.email.clone(),
                                    name: r.name.clone(),
                                    contact_ids: vec![contact.clone()],
                                    account_ids: vec![r.account_id.clone()],
                                    via: LoginVia::Invitation,
                                    confirmed: true,
                                    provisioned: false,
                                    created_at: now,
                                };
                                accept_address(OP, &tx, t, &mut login)?;
                                insert_login(&tx, t, &login).or_store(OP)?;
                                RegisterOutcome::NewLogin(login)
                            }
                            Some(mut login) => {
                                if !login.contact_ids.contains(contact) {
                                    login.contact_ids.push(contact.clone());
                                }
                                if !login.account_ids.contains(&r.account_id) {
                                    login.account_ids.push(r.account_id.clone());
                                }
                                accept_address(OP, &tx, t, &mut login)?;
                                tx.execute(
                                    "UPDATE logins SET contact_ids = ?3, account_ids = ?4 \
                                 WHERE tenant = ?1 AND email_norm = ?2",
                                    params![
                                        t,
                                        norm,
                                        ids_json(&login.contact_ids),
                                        ids_json(&login.account_ids)
                                    ],
                                )
                                .or_store(OP)?;
                                RegisterOutcome::ExistingLogin(login)
                            }
                        }
                    }
                    Via::PortalKey {
                        confirm_token_hash,
                        confirm_expires_at,
                    } => {
                        if let Some(login) = existing {
                            return Ok(RegisterOutcome::ExistingLogin(login));
                        }
                        let login = Login {
                            email: r.email.clone(),
                            name: r.name.clone(),
                            contact_ids: r.contact_id.iter().cloned().collect(),
                            account_ids: vec![r.account_id.clone()],
                            via: LoginVia::PortalKey,
                            confirmed: false,
                            provisioned: false,
                            created_at: now,
                        };
                        insert_login(&tx, t, &login).or_store(OP)?;
                        tx.execute(
                        "INSERT INTO confirmations (tenant, token_hash, email_norm, expires_at) \
                         VALUES (?1, ?2, ?3, ?4)",
                        params![t, confirm_token_hash.as_slice(), norm, ts(*confirm_expires_at)],
                    )
                    .or_store(OP)?;
                        RegisterOutcome::NewLogin(login)
                    }
                };
            tx.commit().or_store(OP)?;
            Ok(outcome)
        })
        .await
    }

    async fn get_login(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Option<Login>, StoreError> {
        const OP: &str = "get_login";
        let (tenant, norm) = (tenant.clone(), email.normalized());
        self.read(OP, move |conn| login_in(OP, conn, tenant.as_str(), &norm))
            .await
    }

    async fn mark_provisioned(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError> {
        const OP: &str = "mark_provisioned";
        let (tenant, norm) = (tenant.clone(), email.normalized());
        self.write(OP, move |conn| {
            let n = conn
                .execute(
                    "UPDATE logins SET provisioned = 1 WHERE tenant = ?1 AND email_norm = ?2",
                    params![tenant.as_str(), norm],
                )
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn confirm_login(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<ConfirmOutcome, StoreError> {
        const OP: &str = "confirm_login";
        let (tenant, hash) = (tenant.clone(), *token_hash);
        self.write(OP, move |conn| {
            let t = tenant.as_str();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .or_store(OP)?;
            let row = confirmation_in(OP, &tx, t, &hash)?;
            let Some((norm, expires_at, used_at)) = row else {
                return Ok(ConfirmOutcome::Unknown);
            };
            let Some(mut login) = login_in(OP, &tx, t, &norm)? else {
                return Ok(ConfirmOutcome::Unknown);
            };
            if used_at.is_some() || login.confirmed {
                return Ok(ConfirmOutcome::AlreadyConfirmed(login));
            }
            if ts(now) >= expires_at {
                return Ok(ConfirmOutcome::Expired);
            }
            tx.execute(
                "UPDATE confirmations SET used_at = ?3 WHERE tenant = ?1 AND token_hash = ?2",
                params![t, hash.as_slice(), ts(now)],
            )
            .or_store(OP)?;
            tx.execute(
                "UPDATE logins SET confirmed = 1 WHERE tenant = ?1 AND email_norm = ?2",
                params![t, norm],
            )
            .or_store(OP)?;
            for c in &login.contact_ids {
                accept_contact(&tx, t, c.as_str()).or_store(OP)?;
            }
            tx.commit().or_store(OP)?;
            login.confirmed = true;
            Ok(ConfirmOutcome::Confirmed(login))
        })
        .await
    }

    async fn find_confirmation(
        &self,
        tenant: &TenantId,
        token_hash: &[u8; 32],
    ) -> Result<Option<(Login, OffsetDateTime, bool)>, StoreError> {
        const OP: &str = "find_confirmation";
        let (tenant, hash) = (tenant.clone(), *token_hash);
        self.read(OP, move |conn| {
            let t = tenant.as_str();
            let row = confirmation_in(OP, conn, t, &hash)?;
            let Some((norm, expires_at, used_at)) = row else {
                return Ok(None);
            };
            let Some(login) = login_in(OP, conn, t, &norm)? else {
                return Ok(None);
            };
            let expires = from_ts(OP, Some(expires_at))?.unwrap_or(OffsetDateTime::UNIX_EPOCH);
            Ok(Some((login, expires, used_at.is_some())))
        })
        .await
    }

    async fn hit_rate_limit(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        const OP: &str = "hit_rate_limit";
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.write(OP, move |conn| {
            // Counters of windows long gone are swept by the writes that make new ones.
            conn.prepare_cached("DELETE FROM rate_limits WHERE tenant = ?1 AND expires_at < ?2")
                .and_then(|mut s| s.execute(params![tenant.as_str(), ts(window_start)]))
                .or_store(OP)?;
            let n: i64 = conn
                .prepare_cached(
                    "INSERT INTO rate_limits (tenant, key, window_start, n, expires_at) \
                     VALUES (?1, ?2, ?3, 1, ?4) \
                     ON CONFLICT (tenant, key, window_start) DO UPDATE SET n = n + 1 \
                     RETURNING n",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), key, ts(window_start), ts(expires_at)],
                        |r| r.get(0),
                    )
                })
                .or_store(OP)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn rate_limit_count(
        &self,
        tenant: &TenantId,
        key: &str,
        window_start: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        const OP: &str = "rate_limit_count";
        let (tenant, key) = (tenant.clone(), key.to_owned());
        self.read(OP, move |conn| {
            let n: Option<i64> = conn
                .prepare_cached(
                    "SELECT n FROM rate_limits WHERE tenant = ?1 AND key = ?2 \
                     AND window_start = ?3 AND expires_at > ?4",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), key, ts(window_start), ts(now)],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .or_store(OP)?;
            Ok(n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
        })
        .await
    }

    async fn put_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
    ) -> Result<(), StoreError> {
        const OP: &str = "put_request";
        let (tenant, r) = (tenant.clone(), request.clone());
        self.write(OP, move |conn| {
            let (status, reason) = status_columns(r.status);
            conn.execute(
                &format!(
                    "INSERT INTO registration_requests (tenant, {REQUEST_COLUMNS}, email_norm) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    tenant.as_str(),
                    r.request_id.as_str(),
                    r.name,
                    r.email.as_str(),
                    r.phone,
                    r.address,
                    r.division_id.as_str(),
                    r.account_number,
                    status,
                    reason,
                    r.matched_account_id.as_ref().map(AccountId::as_str),
                    r.matched_contact_id.as_ref().map(ContactId::as_str),
                    r.note,
                    ts(r.created_at),
                    ts(r.updated_at),
                    r.email.normalized(),
                ],
            )
            .or_store(OP)?;
            Ok(())
        })
        .await
    }

    async fn get_request(
        &self,
        tenant: &TenantId,
        id: &RequestId,
    ) -> Result<Option<RegistrationRequest>, StoreError> {
        const OP: &str = "get_request";
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM registration_requests \
                     WHERE tenant = ?1 AND request_id = ?2"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![tenant.as_str(), id.as_str()])
                .or_store(OP)?;
            match rows.next().or_store(OP)? {
                Some(row) => Ok(Some(read_request(OP, row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_requests(
        &self,
        tenant: &TenantId,
        filter: &RequestFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<RegistrationRequest>, StoreError> {
        const OP: &str = "list_requests";
        let after = cursor.map(decode_request_cursor).transpose()?;
        let (tenant, filter) = (tenant.clone(), filter.clone());
        let limit = limit.clamp(1, portal_core::ports::MAX_PAGE_SIZE);
        self.read(OP, move |conn| {
            let before = after.as_ref().map(RequestId::as_str);
            let window = match filter.max_examined {
                None => None,
                Some(n) => Some(Window::read(
                    OP,
                    conn,
                    "SELECT request_id FROM registration_requests \
                     WHERE tenant = ?1 AND (?2 IS NULL OR request_id < ?2) \
                     ORDER BY request_id DESC LIMIT ?3",
                    &[&tenant.as_str(), &before],
                    n.max(1) as usize,
                )?),
            };
            let bound = window.as_ref().and_then(|w| w.bound.clone());
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM registration_requests \
                     WHERE tenant = ?1 AND (?2 IS NULL OR request_id < ?2) \
                     AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR division_id = ?4) \
                     AND (?6 IS NULL OR request_id >= ?6) \
                     ORDER BY request_id DESC LIMIT ?5"
                ))
                .or_store(OP)?;
            let mut rows = s
                .query(params![
                    tenant.as_str(),
                    before,
                    filter.status,
                    filter.division_id.as_ref().map(DivisionId::as_str),
                    i64::from(limit) + 1,
                    bound,
                ])
                .or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_request(OP, row)?);
            }
            let next_cursor = if items.len() > limit as usize {
                items.truncate(limit as usize);
                items.last().map(|r| encode_request_cursor(&r.request_id))
            } else {
                // The window ran out before the page filled: go on before its last key.
                window
                    .as_ref()
                    .and_then(Window::resume_after)
                    .map(|b| parse_stored(OP, "request id", RequestId::parse(b)))
                    .transpose()?
                    .map(|r| encode_request_cursor(&r))
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }

    async fn update_request(
        &self,
        tenant: &TenantId,
        request: &RegistrationRequest,
        expected: RequestStatus,
    ) -> Result<bool, StoreError> {
        const OP: &str = "update_request";
        let (tenant, r) = (tenant.clone(), request.clone());
        self.write(OP, move |conn| {
            let (status, reason) = status_columns(r.status);
            let (exp_status, exp_reason) = status_columns(expected);
            let n = conn
                .execute(
                    "UPDATE registration_requests SET status = ?3, close_reason = ?4, \
                     matched_account_id = ?5, matched_contact_id = ?6, note = ?7, updated_at = ?8 \
                     WHERE tenant = ?1 AND request_id = ?2 AND status = ?9 \
                     AND coalesce(close_reason, '') = coalesce(?10, '')",
                    params![
                        tenant.as_str(),
                        r.request_id.as_str(),
                        status,
                        reason,
                        r.matched_account_id.as_ref().map(AccountId::as_str),
                        r.matched_contact_id.as_ref().map(ContactId::as_str),
                        r.note,
                        ts(r.updated_at),
                        exp_status,
                        exp_reason,
                    ],
                )
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }

    async fn open_requests_for(
        &self,
        tenant: &TenantId,
        email: &Email,
    ) -> Result<Vec<RegistrationRequest>, StoreError> {
        const OP: &str = "open_requests_for";
        let (tenant, norm) = (tenant.clone(), email.normalized());
        self.read(OP, move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM registration_requests \
                     WHERE tenant = ?1 AND email_norm = ?2 AND status <> 'closed' \
                     ORDER BY request_id"
                ))
                .or_store(OP)?;
            let mut rows = s.query(params![tenant.as_str(), norm]).or_store(OP)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().or_store(OP)? {
                items.push(read_request(OP, row)?);
            }
            Ok(items)
        })
        .await
    }

    async fn add_other_email(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        email: &Email,
    ) -> Result<bool, StoreError> {
        const OP: &str = "add_other_email";
        let (tenant, contact, email) = (tenant.clone(), contact.clone(), email.clone());
        self.write(OP, move |conn| {
            let n = conn
                .execute(
                    "UPDATE contacts SET other_email = ?3 WHERE tenant = ?1 AND contact_id = ?2",
                    params![tenant.as_str(), contact.as_str(), email.as_str()],
                )
                .or_store(OP)?;
            Ok(n > 0)
        })
        .await
    }
}

/// Hashes on the blocking pool (Argon2id costs tens of milliseconds on purpose).
async fn hash_password(password: &Password) -> Result<String, IdentityError> {
    let clear = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| IdentityError::backend("hash", e.to_string()))?;
        argon2()
            .hash_password(clear.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| IdentityError::backend("hash", e.to_string()))
    })
    .await
    .map_err(|e| IdentityError::backend("hash", e))?
}

/// A hash of nothing, checked when an address has no login, so "no such login" costs what
/// "wrong password" does.
fn decoy_phc() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::encode_b64(&[7u8; 16])
            .map(|s| s.to_string())
            .unwrap_or_default();
        SaltString::from_b64(&salt)
            .ok()
            .and_then(|s| {
                argon2()
                    .hash_password(b"decoy", &s)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

#[async_trait]
impl Identity for SqliteStore {
    async fn provision(
        &self,
        tenant: &TenantId,
        login: &Login,
        password: &Password,
    ) -> Result<(), IdentityError> {
        let phc = hash_password(password).await?;
        let (tenant, norm, enabled) = (tenant.clone(), login.email.normalized(), login.confirmed);
        let n = self
            .write("provision", move |conn| {
                conn.execute(
                    "UPDATE logins SET password_phc = ?3, enabled = ?4 \
                     WHERE tenant = ?1 AND email_norm = ?2",
                    params![tenant.as_str(), norm, phc, i64::from(enabled)],
                )
                .or_store("provision")
            })
            .await
            .map_err(|e| IdentityError::backend("provision", e))?;
        if n == 0 {
            return Err(IdentityError::backend(
                "provision",
                "no login is reserved for this address",
            ));
        }
        Ok(())
    }

    async fn enable(&self, tenant: &TenantId, login: &Login) -> Result<(), IdentityError> {
        let (tenant, norm) = (tenant.clone(), login.email.normalized());
        self.write("enable", move |conn| {
            conn.execute(
                "UPDATE logins SET enabled = 1 WHERE tenant = ?1 AND email_norm = ?2",
                params![tenant.as_str(), norm],
            )
            .or_store("enable")
        })
        .await
        .map_err(|e| IdentityError::backend("enable", e))?;
        Ok(())
    }

    async fn verify(
        &self,
        tenant: &TenantId,
        email: &Email,
        password: &str,
    ) -> Result<bool, IdentityError> {
        let (t, norm) = (tenant.clone(), email.normalized());
        let stored: Option<(Option<String>, i64)> = self
            .read("verify", move |conn| {
                conn.query_row(
                    "SELECT password_phc, enabled FROM logins WHERE tenant = ?1 AND email_norm = ?2",
                    params![t.as_str(), norm],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .or_store("verify")
            })
            .await
            .map_err(|e| IdentityError::backend("verify", e))?;
        let (phc, enabled) = match stored {
            Some((Some(phc), enabled)) => (phc, enabled != 0),
            _ => (decoy_phc().to_owned(), false),
        };
        let clear = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&phc)
                .map(|h| argon2().verify_password(clear.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(|e| IdentityError::backend("verify", e))?;
        Ok(ok && enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_never_the_password() {
        let salt = SaltString::encode_b64(&[1u8; 16]).unwrap();
        let phc = argon2()
            .hash_password(b"correct pony staple", &salt)
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("pony"));
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(argon2()
            .verify_password(b"correct pony staple", &parsed)
            .is_ok());
        assert!(argon2()
            .verify_password(b"correct pony stable", &parsed)
            .is_err());
    }

    #[test]
    fn request_cursors_round_trip_and_reject_forgeries() {
        let id = RequestId::generate(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            decode_request_cursor(&encode_request_cursor(&id)).unwrap(),
            id
        );
        for bad in ["", "!!", &portal_core::ports::cursor::encode("inv1", "c-1")] {
            assert!(decode_request_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
