//! The DynamoDB store: every port of [`portal_core::ports`] on one table.
//!
//! # Table
//!
//! One table (see [`table_definition`], mirrored by the `Table` resource of `template.yaml`
//! and checked against it by a test): string keys `pk` (partition) and `sk` (sort),
//! on-demand billing, TTL on `ttl`. Every key begins with `T#{tenant}`, built from the
//! caller's tenant — which comes from the token — so no operation can name another tenant's
//! item. Ids never contain `#` (the domain rejects it), so keys cannot collide or be forged
//! by choosing an id.
//!
//! `gsi1` (`gsi1pk`/`gsi1sk`, projection ALL) is a sparse, overloaded index. Five kinds of
//! item carry its keys: an account item (`T#{t}#ANUM#{account number}` / account id: the
//! portal-key sign-up finds an account by its number), a contact sync item with an address
//! (`T#{t}#EMAIL#{normalized email}` / contact id: registering through one link accepts every
//! contact of the tenant with the address), an invitation
//! (`TOK#{hex SHA-256 of its token}` / `T#{t}`: an invitation link names no tenant, its
//! token finds the invitation), an *enabled* recurring setting (`REC#ENABLED` /
//! `T#{t}#{setting}`: the scheduler of one machine lists every tenant's enabled settings
//! without a Scan) and an *unfinished* campaign (`ACTIVE#CMP` / `{created_at}#T#{t}#{campaign}`:
//! the sweeper lists every tenant's campaigns not yet completed or failed, see `sweep`). All
//! are written anyway (sync's account and contact sync items, claims' invitations, saved
//! settings), so the index costs one index write per such write and no request: a sync
//! rewrites each sync item whole, so it also writes its address entry (the index holds a copy
//! of every sync item with an address, ~as much storage again as those items). Every lookup
//! tolerates its eventual consistency (see `registration`, `recurring`).
//! Contact lookups by id deliberately do *not* use a GSI: see the locator item below.
//!
//! # Items
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | division | `T#{t}` | `DIV#{division}` | `name`, `email_from`, `last_bulk_sent_at`?, `first_synced_at`? (set when `put_division` creates the item, never changed; absent on divisions written before it was kept), `fv`? (`kept` when created, `off`, or absent: whether its filter-value summary is believed, see `filter_values`) |
//! | account | `T#{t}#ACC#{account}` | `A` | `div`, `contacts` (list of its contact ids), `pkey` (its portal key), `acc_no`, `acc_name`, `gsi1pk` = `T#{t}#ANUM#{acc_no}`, `gsi1sk` = account id, `class`, `bill_group`, `source`, `site_source`, `ver` (N; the last five absent on items written before filter-value summaries were kept) |
//! | contact locator | `T#{t}#C#{contact}` | `L` | `div`, `acc` |
//! | contact sync item | `T#{t}#D#{division}#S#{shard:02}` | `C#{contact}` | `acc`, `name`, `email`?, `gsi1pk` = `T#{t}#EMAIL#{normalized email}` and `gsi1sk` = contact id (with `email` only), `phone`, `billing`, and the account's `acc_no`, `acc_name`, `class`, `bill_group`, `source`, `site_source`, `active`, `balance` (N), `autopay`, `pkey` (copy of the account's key) |
//! | contact state item | same as its sync item | `C#{contact}#ST` | `status`?, `invited_at`?, `n_inv`? (N: `invitations_sent`, added to by each claim), `last_login`?, `other_emails`? (string set) |
//! | suppression | `T#{t}#SUP` | `E#{lowercased email}` | `reason`, `at` |
//! | filter-value summary shard | `T#{t}#FV` | `{division}#{shard:02}` | `{field}\|{value}` (N): contacts with that value, this shard's part (see `filter_values`) |
//! | address claim | `T#{t}#ADDR#{hex SHA-256 of the normalized email}` | `ADDR` | `at`, `cmp`, `contact`, `ttl` (see `campaigns`: one invitation per address per 24 hours) |
//! | delivery lease, counted fan-out page | `T#{t}#RUN#{campaign}` | `LEASE#{batch}`, `PAGE#{key}` | see `leases` |
//! | campaign, invitation, division's campaign, idempotency key, selection chunk | `T#{t}#CMP#{campaign}`, `T#{t}#DCMP#{division}`, `T#{t}#IDEM#{hash}`, `T#{t}#SEL#{campaign}` | `CMP`, `INV#{contact}`, `{campaign}`, `IDEM`, `{chunk:04}` | see `campaigns` (the 24-hour rules as transactions) |
//! | template | `T#{t}` | `TPL#{template}` | `name`, `subject`, `html`, `text` (raw), `kind` (see `templates`) |
//! | login | `T#{t}#LOGIN#{normalized email}` | `LOGIN` | `email`, `name`, `cids`/`aids` (string sets), `via`, `confirmed`, `provisioned`, `at` (see `registration`) |
//! | confirmation link | `T#{t}#CONF#{hex SHA-256 of the token}` | `CONF` | `login`, `exp`, `used`, `ttl` |
//! | rate-limit counter | `T#{t}#RL#{hex SHA-256 of the key}` | window start | `n`, `exp`, `ttl` |
//! | sign-up request | `T#{t}#REQ` | `{request id}` (sorts by time) | see `registration` |
//! | recurring setting | `T#{t}` | `REC#{setting}` | the whole setting, `gsi1pk` = `REC#ENABLED` and `gsi1sk` = `T#{t}#{setting}` when enabled (see `recurring`) |
//! | campaign watch record | `T#{t}#CMP#{campaign}` | `SWEEP` | `fp`, `since`, `ttl` (see `sweep`) |
//! | recurring run | `T#{t}#RUN#{setting}` | `{local date}` (`YYYY-MM-DD`) | `started`, `cmp`?, `done` (see `recurring`) |
//!
//! Times are RFC 3339 strings in UTC, kept to the nanosecond, written with exactly nine
//! fractional digits so that they compare as strings in condition expressions.
//!
//! **Write sharding.** A division's contacts are spread over 16 partitions by
//! `shard = FNV-1a(contact_id) mod 16` (a hash that is stable forever, since it is part of
//! the key). A 1M-contact division is 16 partitions of ~62,500 contacts, so neither a sync
//! burst nor a full read hits one partition's throughput limit, and a division can be read
//! with 16 parallel Queries.
//!
//! **Sync and state are separate items.** The sync item holds only what the company's
//! systems send, so a sync writes it blind with BatchWriteItem (25 per call) and can never
//! overwrite a portal status or invitation time. The system-kept fields live in the state
//! item, written only with UpdateItem (inside a transaction that checks the contact exists).
//! Every id character sorts after `#`, so `C#{id}#ST` sorts immediately after `C#{id}` and
//! before any other contact: a Query streams each contact's two items adjacently and
//! `items::Merger` joins them with O(1) state — no join, no second read. A contact without a
//! state item is `not_sent`. A last login reported by sync is written to the state item.
//!
//! **The locator** maps a contact id to its division and account with a strongly consistent
//! GetItem/BatchGetItem. A GSI on the sync items could answer the same question, but a GSI is
//! eventually consistent (a `get_contact` right after a sync could miss), cannot be read with
//! BatchGetItem (sync needs 100 lookups per call), and would be written on every sync of
//! every contact; the locator is written only when a contact appears or moves.
//!
//! # Operations and access patterns
//!
//! | port operation | requests |
//! |---|---|
//! | `put_division` | UpdateItem (SET name, email_from under `attribute_exists(first_synced_at)`; keeps `last_bulk_sent_at`); a new division fails it and takes a second (SET name, email_from, `first_synced_at`, `fv = kept` under `attribute_not_exists(pk)`); a division from before `first_synced_at` was kept fails both and takes a third without them (it stays `None`) |
//! | `get_division` | GetItem |
//! | `list_divisions` | Query `pk = T#{t}`, `sk begins_with DIV#` (sorted by id) |
//! | `list_divisions_page` | Query `pk = T#{t}`, `sk` between `DIV#{after}` and `DIV#~`, `Limit` one past the page |
//! | `upsert_accounts` | BatchGetItem the account items, then the locators of contacts new to their account; BatchGetItem the state items of contacts changing division; BatchWriteItem in dependency order (below); UpdateItem per contact whose account brings a `last_login`; BatchGetItem of the divisions' `fv`, then TransactWriteItems of up to 99 changed account items (each under `ver = :read`) with one `ADD` per division to its filter-value summary. Each account's key is the synced one, else the stored one, else `PortalKey::generate()`; it is written on the account item and copied onto every sync item written |
//! | `delete_account` | GetItem account, BatchWriteItem deletes of its contacts' three items, BatchGetItem of its division's `fv`, then TransactWriteItems: Delete the account (under `ver = :read`) + `ADD` its contribution out of the summary |
//! | `count_contacts` | Query the suppression partition; Query every (division, shard) partition in parallel |
//! | `list_contacts` | Query the suppression partition (only for the groups it decides: eligible, held, suppressed); Query (division, shard) partitions in order from the cursor |
//! | `get_contact` | GetItem locator, Query `sk BETWEEN C#{id} AND C#{id}#ST` |
//! | `get_contacts` | BatchGetItem the locators, then the sync and state items of the contacts found |
//! | `locate_contacts` | BatchGetItem the locators (100 per call, 8 calls at once) |
//! | `filter_values` | BatchGetItem the divisions' `fv`; per `kept` division one Query `pk = T#{t}#FV`, `sk begins_with {division}#` (its 16 summary shards); per other division its 16 (division, shard) partitions, projected on the four values (like a count) |
//! | `set_portal_status`, `record_invited` | GetItem locator, TransactWriteItems (ConditionCheck sync item exists + Update state item) |
//! | `suppress` | PutItem `attribute_not_exists(pk)` (the first reason is kept) |
//! | `is_suppressed` | GetItem |
//! | `create_campaign` | one TransactWriteItems: Update each division (manual sends over divisions) under the 24-hour condition, Put campaign, Put idempotency key, Put the campaign into each division's list |
//! | `create_selection_campaign` | the same TransactWriteItems without any division Update, plus a Put per chunk of 500 contact ids (at most 20) |
//! | `selection_ids` | BatchGetItem of the one or two chunks a page spans |
//! | `claim_contacts` | BatchGetItem locators; TransactWriteItems of 49 claims (Update state item under the 24-hour condition, `ADD n_inv 1` in the same Update + Put invitation) and the campaign's counters, failed claims dropped and the rest retried |
//! | `apply_facts` | GetItem (one contact) or BatchGetItem (several) of the invitations; one TransactWriteItems of the changed ones only (each conditioned on the state read, its address's suppression, the campaign's counters); a cancelled one is read again and retried |
//! | `list_invitations` | Query the campaign's partition from the cursor (FilterExpression on category and search) until `limit + 1` match |
//! | `list_campaigns` | Query the division's campaign list backwards, BatchGetItem the campaigns |
//! | `recount_campaign` | GetItem campaign, Query its invitations (category and send state only); the fix is one conditional UpdateItem |
//! | `get_portal_key` | GetItem account (an item from before keys: one UpdateItem `if_not_exists` gives it one) |
//! | `set_portal_key` | UpdateItem account (`ALL_NEW`), then UpdateItem per contact sync item (`acc = account`) |
//! | `find_account_by_number` | Query `gsi1` `T#{t}#ANUM#{number}`, GetItem the account, BatchGetItem its sync items (projected) |
//! | `find_token` | Query `gsi1` `TOK#{hex}` |
//! | `register` (invitation) | BatchGetItem locator + login; Query `gsi1` `T#{t}#EMAIL#{address}` (the address's other contacts); TransactWriteItems: Update invitation (`token_used_at`, unused only), ConditionCheck sync item, Update state item (`accepted`), Put login (`attribute_not_exists`) or Update login (`ADD` ids), and per other contact of the address (up to 48) ConditionCheck its sync item's address + Update its state item (`accepted`); past 48, one more TransactWriteItems per 49; a lost race on the address: one more TransactWriteItems |
//! | `register` (portal key) | TransactWriteItems: Put login, Put confirmation (both `attribute_not_exists`), ConditionCheck account; an existing login is the Put's `ALL_OLD` copy |
//! | `get_login`, `find_confirmation` | GetItem (the link, then its login) |
//! | `mark_provisioned` | UpdateItem `attribute_exists(pk)` |
//! | `confirm_login` | GetItem link, GetItem login, BatchGetItem its contacts' locators; TransactWriteItems: Update link (`used = false AND exp > now`), Update login, Update each state item (`accepted`) |
//! | `hit_rate_limit` | UpdateItem `ADD n :1 SET exp, ttl` (`UPDATED_NEW`) |
//! | `rate_limit_count` | GetItem (past `exp`: 0) |
//! | `put_request`, `get_request` | PutItem `attribute_not_exists(pk)`, GetItem |
//! | `list_requests` | Query `T#{t}#REQ` backwards from the cursor, FilterExpression on status and division, until `limit + 1` match |
//! | `update_request` | PutItem under `status = :expected` (and `why` for a closed one) |
//! | `open_requests_for` | Query `T#{t}#REQ` with FilterExpression `email_n = :e AND status <> closed` |
//! | `add_other_email` | GetItem locator, TransactWriteItems (ConditionCheck sync item + Update state item `ADD other_emails`) |
//! | `put_setting`, `get_setting`, `delete_setting` | PutItem (whole item), GetItem, DeleteItem `ALL_OLD` |
//! | `list_settings` | Query `pk = T#{t}`, `sk begins_with REC#` (sorted by id) |
//! | `enabled_settings` | Query `gsi1` `REC#ENABLED` |
//! | `start_run` | PutItem `attribute_not_exists(pk)` with `ALL_OLD` on a failed condition (the day's record) |
//! | `finish_run` | UpdateItem |
//! | `list_runs` | Query `T#{t}#RUN#{setting}` backwards from the cursor, `Limit = limit + 1` |
//! | `active_campaigns` | Query `gsi1` `ACTIVE#CMP` (FilterExpression leaving paused ones out), BatchGetItem of their watch records |
//! | `put_watch` | UpdateItem under the record read (`attribute_not_exists(pk)`, or `fp` and `since` equal) |
//!
//! **Sync write order.** Each chunk first puts the new sync items (and the copied state of
//! contacts changing division), then applies synced last logins, then deletes the items of
//! removed contacts and the old copies of moved ones, and only then writes the locators of
//! contacts that are new or moved and, last, the account items (skipped when unchanged) with
//! their divisions' filter-value summaries. An interrupted sync therefore leaves the account
//! items and summaries describing the *old* layout, and retrying the same request (the use
//! case's contract) finds every leftover and converges. Moving a contact's state to
//! another division is a read-then-copy, not atomic with a concurrent `record_invited`.
//!
//! # Counting a large division
//!
//! `count_contacts` loads the tenant's suppression list into a set of lowercased addresses,
//! then runs one Query per (division, shard) — 16 per division, at most 16 in flight — with a
//! projection of only the attributes `Filters::matches` and `classify` read. Each page is
//! folded into a per-partition [`Counts`](portal_core::domain::Counts) as it arrives (`Filters::matches`, `classify`,
//! `Counts::add`: the domain is the single definition), and partitions are merged with
//! `Counts::merge`. Memory is one page (≤ 1 MB) per Query in flight plus the suppression set,
//! whatever the division size. Filters are not pushed into a `FilterExpression`: DynamoDB
//! charges for the items read, not returned, and the state items must be read anyway.
//!
//! # Lists and cursors
//!
//! `list_contacts` walks the query's divisions in order, and each division's shards in
//! order, Querying with `sk > C#{last}#ST` to resume. It keeps reading until it has `limit + 1`
//! matching contacts, so `next_cursor` is `None` exactly when nothing follows. The cursor is
//! URL-safe base64 of `{"v":1,"d":division,"s":shard,"c":last contact}`: positions only. The
//! partition key is always rebuilt from the caller's tenant, the division must be one of the
//! query's, and anything that does not parse is [`StoreError::InvalidCursor`], so a forged
//! cursor can at most skip within the caller's own data.
//!
//! Counts and lists use eventually consistent reads (half the cost; a sync is visible within
//! a second); key lookups (`get_*`, sync's reads) are strongly consistent.
//!
//! # Cost, measured
//!
//! `bench-dynamodb` (one division of 100,000 demo contacts on 62,661 accounts, synced in
//! requests of 10,000 accounts): the first sync takes 10,693 requests (8,122
//! BatchWriteItem, 1,812 BatchGetItem, 752 TransactWriteItems of up to 99 account items with
//! their summary `ADD`, 7 Query) — about one request per 9 contacts; the same sync again,
//! nothing changed, takes 4,695 (4,061 BatchWriteItem of sync items only, 627 BatchGetItem
//! of account items, 7 Query; no account item or summary is written); a count takes 33
//! Query pages (16 shards x 2 pages + the suppression list); the division's filter values 2
//! requests (its `fv`, one Query of its summary shards); a 500-row page of the `all` list
//! takes 1 Query, of `eligible` 2 (with the suppression list). Account items are written
//! transactionally since the summaries are kept: twice the write units of a batch put,
//! for fewer requests (99 items a call instead of 25).
//!
//! # Layout
//!
//! - `keys`: key builders, the shard hash, cursors.
//! - `items`: attribute names, item encoding/decoding, the sync/state `Merger`.
//! - `batch`: BatchWriteItem / BatchGetItem within AWS limits, with retries of unprocessed work.
//! - `table`: [`table_definition`] and [`create_table`].
//! - `accounts`: sync (`upsert_accounts`, `delete_account`).
//! - `contacts`: counts, lists, contact lookups and state updates.
//! - `filter_values`: the per-division summaries of the values the list filters take, kept
//!   by the account writes of sync and deletion (versioned, transactional), and read back.
//! - `campaigns`: campaigns, invitations and the two 24-hour rules as transactions.
//! - `invitations`: facts about invitations (SES events, outcomes) as conditional
//!   transactions with the campaign's counters, invitation and campaign lists, recounts.
//! - `registration`: portal keys, the token index, logins, confirmation links, rate limits,
//!   sign-up requests, other emails.
//! - `templates`: templates.
//! - `recurring`: recurring settings and the record of each run (one per local day).
//! - `sweep`: the sweeper's index of unfinished campaigns and their watch records.
//!
//! Every TransactWriteItems goes through `transaction_guard` (see
//! [`DynamoStore::serialize_transactions`]), and so do `start_run`'s conditional PutItem and
//! the delivery leases' conditional UpdateItems, whose races contract and send cases run.

mod accounts;
mod batch;
mod campaigns;
mod contacts;
mod filter_values;
mod invitations;
mod items;
mod keys;
mod leases;
mod ops;
mod recurring;
mod registration;
mod senders;
mod sweep;
mod table;
mod templates;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use portal_core::domain::{Division, DivisionId, DivisionInput, Email, TenantId};
use portal_core::ports::{
    cursor, DivisionStore, Page, StoreError, SuppressionReason, SuppressionStore,
};

pub use table::{
    create_table, table_definition, AttributeDef, IndexDef, KeyElement, ProjectionDef,
    TableDefinition, TtlDef, GSI1, TTL_ATTRIBUTE,
};

use items::{s, Item};

/// The store on one DynamoDB table. Cheap to clone (the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Set by [`DynamoStore::serialize_transactions`] (emulators only).
    transaction_lock: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl DynamoStore {
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        Self {
            client,
            table: table_name.into(),
            transaction_lock: None,
        }
    }

    /// Sends this handle's TransactWriteItems (and `start_run`'s conditional PutItem) one at
    /// a time. For emulators only: moto runs concurrent transactions on one table
    /// interleaved (and fails some with a 500), and checks a single write's condition
    /// without isolation, where DynamoDB isolates them; serialising them client-side restores
    /// DynamoDB's guarantee while the conditions, not the client, still decide every race.
    pub fn serialize_transactions(mut self) -> Self {
        self.transaction_lock = Some(Default::default());
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, op: &'static str, key: Item) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map(|o| o.item)
            .map_err(|e| StoreError::backend(op, e))
    }
}

#[async_trait]
impl DivisionStore for DynamoStore {
    /// A known division: one UpdateItem (`SET name, email_from` under
    /// `attribute_exists(first_synced_at)`), keeping its first sync time. A new one fails
    /// that condition and is created by a second (`attribute_not_exists(pk)`) with the sync's
    /// time and `fv = kept`: its filter-value summary is kept from the start (see
    /// `filter_values`). A division stored before the time was kept fails both and is updated
    /// without it (a third): it stays `None` rather than looking first synced today (which
    /// would make it "new" to a `new_divisions_only` setting).
    async fn put_division(
        &self,
        tenant: &TenantId,
        division: &DivisionInput,
    ) -> Result<Division, StoreError> {
        let key = items::key(
            keys::tenant_pk(tenant),
            keys::division_sk(&division.division_id),
        );
        let synced_at =
            items::time_value(division.synced_at.unwrap_or_else(OffsetDateTime::now_utc))?;
        let update = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .expression_attribute_names("#n", items::DIV_NAME)
                .expression_attribute_names("#e", items::DIV_EMAIL_FROM)
                .expression_attribute_names("#fs", items::DIV_FIRST_SYNCED)
                .expression_attribute_values(":n", s(&division.name))
                .expression_attribute_values(":e", s(division.email_from.as_str()))
                .return_values(ReturnValue::AllNew)
        };
        // Each round fails only if another writer changed the item's kind in between.
        for _ in 0..PUT_DIVISION_ROUNDS {
            let known = update()
                .update_expression("SET #n = :n, #e = :e")
                .condition_expression("attribute_exists(#fs)")
                .send()
                .await;
            match known {
                Ok(out) => return items::decode_division(&out.attributes.unwrap_or_default()),
                Err(e) if ops::condition_failed(&e) => {}
                Err(e) => return Err(StoreError::backend("UpdateItem", e)),
            }
            let created = update()
                .update_expression("SET #n = :n, #e = :e, #fs = :fs, #fv = :kept")
                .condition_expression("attribute_not_exists(pk)")
                .expression_attribute_names("#fv", items::DIV_FILTER_VALUES)
                .expression_attribute_values(":fs", synced_at.clone())
                .expression_attribute_values(":kept", s(items::FILTER_VALUES_KEPT))
                .send()
                .await;
            match created {
                Ok(out) => return items::decode_division(&out.attributes.unwrap_or_default()),
                Err(e) if ops::condition_failed(&e) => {}
                Err(e) => return Err(StoreError::backend("UpdateItem", e)),
            }
            let legacy = update()
                .update_expression("SET #n = :n, #e = :e")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(#fs)")
                .send()
                .await;
            match legacy {
                Ok(out) => return items::decode_division(&out.attributes.unwrap_or_default()),
                Err(e) if ops::condition_failed(&e) => {}
                Err(e) => return Err(StoreError::backend("UpdateItem", e)),
            }
        }
        Err(StoreError::backend(
            "UpdateItem",
            campaigns::Cancelled("division write kept conflicting".into()),
        ))
    }

    async fn get_division(
        &self,
        tenant: &TenantId,
        id: &DivisionId,
    ) -> Result<Option<Division>, StoreError> {
        self.get_item(
            "GetItem",
            items::key(keys::tenant_pk(tenant), keys::division_sk(id)),
        )
        .await?
        .map(|i| items::decode_division(&i))
        .transpose()
    }

    async fn list_divisions(&self, tenant: &TenantId) -> Result<Vec<Division>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::tenant_pk(tenant)))
            .expression_attribute_values(":prefix", s(keys::DIVISION_SK_PREFIX))
            .consistent_read(true);
        let mut out = Vec::new();
        ops::query_all(query, |item| {
            out.push(items::decode_division(item)?);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn list_divisions_page(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Division>, StoreError> {
        let after = cursor
            .map(|c| cursor::decode_id(cursor::DIVISIONS, c, DivisionId::parse))
            .transpose()?;
        ops::id_page(
            self.client.query().table_name(&self.table),
            keys::tenant_pk(tenant),
            keys::DIVISION_SK_PREFIX,
            (cursor::DIVISIONS, after.as_ref().map(DivisionId::as_str)),
            limit,
            items::decode_division,
            |d| d.division_id.as_str(),
        )
        .await
    }
}

#[async_trait]
impl SuppressionStore for DynamoStore {
    async fn suppress(
        &self,
        tenant: &TenantId,
        email: &Email,
        reason: SuppressionReason,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut item = items::key(
            keys::suppression_pk(tenant),
            keys::suppression_sk(&email.normalized()),
        );
        item.insert(items::REASON.into(), s(reason.as_str()));
        item.insert(items::SUPPRESSED_AT.into(), items::time_value(at)?);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already suppressed: idempotent, and the first reason is kept.
            Err(e) if ops::condition_failed(&e) => Ok(()),
            Err(e) => Err(StoreError::backend("PutItem", e)),
        }
    }

    async fn is_suppressed(&self, tenant: &TenantId, email: &Email) -> Result<bool, StoreError> {
        Ok(self
            .get_item(
                "GetItem",
                items::key(
                    keys::suppression_pk(tenant),
                    keys::suppression_sk(&email.normalized()),
                ),
            )
            .await?
            .is_some())
    }

    /// One Query of the tenant's whole suppression list (a page holds thousands of
    /// addresses), cheaper in requests than a BatchGet per 100 addresses for the lists a
    /// tenant has in practice.
    async fn suppressed_among(
        &self,
        tenant: &TenantId,
        emails: &[Email],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if emails.is_empty() {
            return Ok(Default::default());
        }
        let all = self.suppressed_set(tenant).await?;
        Ok(emails
            .iter()
            .map(Email::normalized)
            .filter(|e| all.contains(e))
            .collect())
    }
}

impl DynamoStore {
    /// The tenant's suppressed addresses (lowercased), for classifying a count or list.
    async fn suppressed_set(
        &self,
        tenant: &TenantId,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::suppression_pk(tenant)))
            .projection_expression("sk");
        let mut set = std::collections::HashSet::new();
        ops::query_all(query, |item| {
            if let Some(e) = items::get_str(item, items::SK)
                .and_then(|sk| sk.strip_prefix(keys::SUPPRESSION_SK_PREFIX))
            {
                set.insert(e.to_owned());
            }
            Ok(())
        })
        .await?;
        Ok(set)
    }
}

/// Rounds of `put_division` (two conditional updates each) before giving up.
const PUT_DIVISION_ROUNDS: usize = 4;

/// Attribute values map used by a few expressions.
fn values(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
