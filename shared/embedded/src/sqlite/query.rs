//! Turning a [`ContactQuery`] or [`ListQuery`] into SQL, and the list cursor.
//!
//! Filters, groups and search are pushed into the `WHERE` clause; every value is bound as a
//! parameter (an `IN` list gets one placeholder per value), never spliced into the text.
//! The statement text depends only on the *shape* of the query (which filters are set and
//! how many values each has), so the prepared-statement cache stays useful.
//!
//! Boolean filters and groups become one `(flags & mask) = want` test on the generated
//! `flags` column (see [`super::schema`]); the 24-hour rule becomes a comparison with
//! `cutoff = floor(now) - 86400`: a contact invited at whole second `t` is held while
//! `now < t + 24h`, i.e. while `t > cutoff`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rusqlite::types::Value;
use time::OffsetDateTime;

use portal_core::domain::{ContactId, Counts, DivisionId, Filters, Group, HOLD_WINDOW};
use portal_core::ports::{ContactQuery, StoreError};

use super::schema::{
    FLAG_ACTIVE_SERVICES, FLAG_AUTOPAY, FLAG_BALANCE_DUE, FLAG_BILLING, FLAG_HAS_EMAIL,
    FLAG_STATUS_MASK, FLAG_SUPPRESSED,
};

const STATUS_NOT_SENT: i64 = 0;
const STATUS_PENDING: i64 = 1;
const STATUS_ACCEPTED: i64 = 2;

/// The last whole second at which an invitation no longer holds a contact.
pub fn hold_cutoff(now: OffsetDateTime) -> i64 {
    now.unix_timestamp() - HOLD_WINDOW.whole_seconds()
}

/// A division's rows of `contact_cube` that still count contacts (`?1` tenant, `?2`
/// division): the four list-filter fields of each combination and its number of contacts.
/// Rows are read in key order and folded by the caller; `n > 0` skips combinations whose
/// contacts have all gone (the triggers decrement, never delete).
pub const FILTER_VALUES_SQL: &str = "SELECT account_class, bill_group, account_source, \
     site_source, n FROM contact_cube WHERE tenant = ?1 AND division_id = ?2 AND n > 0";

/// A `WHERE` clause fragment (each part starts with ` AND `) and its parameters.
#[derive(Debug, Default)]
pub struct Clause {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Clause {
    fn push(&mut self, sql: &str, params: impl IntoIterator<Item = Value>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(sql);
        self.params.extend(params);
    }

    fn one_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let placeholders = vec!["?"; values.len()].join(", ");
        self.push(
            &format!("{column} IN ({placeholders})"),
            values.iter().map(|v| Value::Text(v.clone())),
        );
    }

    fn flags(&mut self, mask: i64, want: i64) {
        if mask != 0 {
            self.push(
                "(flags & ?) = ?",
                [Value::Integer(mask), Value::Integer(want)],
            );
        }
    }
}

/// The filters of a query (not its group): list filters as `IN`, switches as flag bits.
pub fn filter_clause(filters: &Filters) -> (Clause, i64, i64) {
    let mut c = Clause::default();
    c.one_of("account_class", &filters.account_class);
    c.one_of("bill_group", &filters.bill_group);
    c.one_of("account_source", &filters.account_source);
    c.one_of("site_source", &filters.site_source);
    let (mut mask, mut want) = (0, 0);
    if filters.active_services {
        mask |= FLAG_ACTIVE_SERVICES;
        want |= FLAG_ACTIVE_SERVICES;
    }
    if filters.balance_due {
        mask |= FLAG_BALANCE_DUE;
        want |= FLAG_BALANCE_DUE;
    }
    if filters.billing_contacts_only {
        mask |= FLAG_BILLING;
        want |= FLAG_BILLING;
    }
    if filters.without_autopay {
        mask |= FLAG_AUTOPAY;
    }
    (c, mask, want)
}

/// Whether the 24-hour rule must hold (`Some(true)`), must not (`Some(false)`) or is
/// irrelevant (`None`) for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Any,
    Yes,
    No,
}

/// A group as a flag test plus the 24-hour condition; mirrors [`Group::contains`] over
/// [`portal_core::domain::classify`].
pub fn group_flags(group: Group, limit_to_uninvited: bool) -> (i64, i64, Held) {
    // Targeted: not_sent, or pending when not limited to uninvited contacts.
    let (t_mask, t_want) = if limit_to_uninvited {
        (FLAG_STATUS_MASK, STATUS_NOT_SENT)
    } else {
        // Status 0 or 1 <=> the "accepted" bit (2) is clear.
        (STATUS_ACCEPTED, 0)
    };
    let contact = FLAG_HAS_EMAIL | FLAG_SUPPRESSED;
    match group {
        Group::All => (0, 0, Held::Any),
        Group::ActiveServices => (FLAG_ACTIVE_SERVICES, FLAG_ACTIVE_SERVICES, Held::Any),
        Group::Accepted => (FLAG_STATUS_MASK, STATUS_ACCEPTED, Held::Any),
        Group::Pending => (FLAG_STATUS_MASK, STATUS_PENDING, Held::Any),
        Group::NotSent => (FLAG_STATUS_MASK, STATUS_NOT_SENT, Held::Any),
        Group::NoEmail => (t_mask | FLAG_HAS_EMAIL, t_want, Held::Any),
        Group::Suppressed => (t_mask | contact, t_want | contact, Held::Any),
        Group::Held24h => (t_mask | contact, t_want | FLAG_HAS_EMAIL, Held::Yes),
        Group::Eligible => (t_mask | contact, t_want | FLAG_HAS_EMAIL, Held::No),
    }
}

/// Adds one `GROUP BY flags` row of a count (`n` contacts, `recent` of them invited after
/// the cutoff) to the counts; mirrors [`Counts::add`] over [`portal_core::domain::classify`].
pub fn add_group(counts: &mut Counts, flags: i64, n: u64, recent: u64, limit_to_uninvited: bool) {
    counts.total += n;
    if flags & FLAG_ACTIVE_SERVICES != 0 {
        counts.active_services += n;
    }
    let status = flags & FLAG_STATUS_MASK;
    match status {
        STATUS_ACCEPTED => {
            counts.accepted += n;
            return;
        }
        STATUS_PENDING => {
            counts.pending += n;
            if limit_to_uninvited {
                return;
            }
        }
        _ => counts.not_sent += n,
    }
    if flags & FLAG_HAS_EMAIL == 0 {
        counts.no_email += n;
    } else if flags & FLAG_SUPPRESSED != 0 {
        counts.suppressed += n;
    } else {
        counts.held_24h += recent;
        counts.eligible += n - recent.min(n);
    }
}

/// The cube statement of a count for one division: parameters are tenant, division, then
/// the filter clause's. Yields `(flags, contacts)` rows.
pub fn cube_sql(query: &ContactQuery) -> Clause {
    let (mut c, mask, want) = filter_clause(&query.filters);
    c.flags(mask, want);
    Clause {
        sql: format!(
            "SELECT flags, sum(n) FROM contact_cube \
             WHERE tenant = ?1 AND division_id = ?2{} GROUP BY flags",
            renumber(&c.sql, 3)
        ),
        params: c.params,
    }
}

/// The `flags` values whose contacts the 24-hour rule can hold under these filters:
/// targeted, with an address, not suppressed.
fn holdable_flags(query: &ContactQuery) -> Vec<i64> {
    let (_, fmask, fwant) = filter_clause(&query.filters);
    let (gmask, gwant, _) = group_flags(Group::Held24h, query.limit_to_uninvited);
    (0..=0xFF)
        .filter(|v| v & FLAG_STATUS_MASK != FLAG_STATUS_MASK)
        .filter(|v| v & fmask == fwant && v & gmask == gwant)
        .collect()
}

/// The held statement of a count for one division: contacts invited after the cutoff among
/// the holdable flag values. Parameters are tenant, division, cutoff, then the rest. Yields
/// `(flags, contacts)` rows. `None` when no flag value can be held.
pub fn held_sql(query: &ContactQuery) -> Option<Clause> {
    let flags = holdable_flags(query);
    if flags.is_empty() {
        return None;
    }
    let (filters, _, _) = filter_clause(&query.filters);
    let mut c = Clause::default();
    let placeholders = vec!["?"; flags.len()].join(", ");
    c.push(
        &format!("flags IN ({placeholders})"),
        flags.into_iter().map(Value::Integer),
    );
    c.sql.push_str(&filters.sql);
    c.params.extend(filters.params);
    Some(Clause {
        sql: format!(
            "SELECT flags, count(*) FROM contacts INDEXED BY contacts_counts \
             WHERE tenant = ?1 AND division_id = ?2 AND last_invited_at > ?3{} GROUP BY flags",
            renumber(&c.sql, 4)
        ),
        params: c.params,
    })
}

/// The keys a bounded list page may examine in one division (see [`super::Window`]):
/// tenant, division, the contact id to start after, the row limit.
pub const LIST_KEYS: &str = "SELECT contact_id FROM contacts \
     WHERE tenant = ?1 AND division_id = ?2 AND contact_id > ?3 ORDER BY contact_id LIMIT ?4";

/// Sorts after every contact id (ids are ASCII letters, digits and `._:-`): the bound of an
/// unbounded page.
pub const NO_BOUND: &str = "~";

/// The list statement for one division: parameters are tenant, division, the contact id to
/// start after, the row limit, the last contact id it may return ([`NO_BOUND`]: none), then
/// the rest.
pub fn list_sql(query: &ContactQuery, group: Group, search: &str) -> Clause {
    let (mut c, fmask, fwant) = filter_clause(&query.filters);
    let (gmask, gwant, held) = group_flags(group, query.limit_to_uninvited);
    c.flags(fmask | gmask, fwant | gwant);
    let cutoff = Value::Integer(hold_cutoff(query.now));
    match held {
        Held::Any => {}
        Held::Yes => c.push("last_invited_at > ?", [cutoff]),
        Held::No => c.push(
            "(last_invited_at IS NULL OR last_invited_at <= ?)",
            [cutoff],
        ),
    }
    if !search.is_empty() {
        c.push(
            "instr(search_text, ?) > 0",
            [Value::Text(search.to_owned())],
        );
    }
    Clause {
        sql: format!(
            "SELECT {} FROM contacts \
             WHERE tenant = ?1 AND division_id = ?2 AND contact_id > ?3 AND contact_id <= ?5{} \
             ORDER BY contact_id LIMIT ?4",
            super::CONTACT_COLUMNS,
            renumber(&c.sql, 6)
        ),
        params: c.params,
    }
}

/// Numbers the anonymous `?` placeholders of a fragment from `first` on, so they can follow
/// the fixed numbered ones.
fn renumber(sql: &str, first: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = first;
    for ch in sql.chars() {
        if ch == '?' {
            out.push_str(&format!("?{n}"));
            n += 1;
        } else {
            out.push(ch);
        }
    }
    out
}

const CURSOR_VERSION: &str = "s1";

/// An opaque position: after `contact_id` in `division_id`.
pub fn encode_cursor(division: &DivisionId, contact: &ContactId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}\n{division}\n{contact}"))
}

/// Parses a cursor made by [`encode_cursor`] for one of `divisions`.
pub fn decode_cursor(
    raw: &str,
    divisions: &[DivisionId],
) -> Result<(DivisionId, ContactId), StoreError> {
    let bad = || StoreError::InvalidCursor("the cursor was not made by this list".into());
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split('\n');
    let (Some(CURSOR_VERSION), Some(d), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let division = DivisionId::parse(d).map_err(|_| bad())?;
    let contact = ContactId::parse(c).map_err(|_| bad())?;
    if !divisions.contains(&division) {
        return Err(bad());
    }
    Ok((division, contact))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let d = DivisionId::parse("d1").unwrap();
        let c = ContactId::parse("c-9").unwrap();
        let divs = vec![d.clone()];
        let cur = encode_cursor(&d, &c);
        assert_eq!(decode_cursor(&cur, &divs).unwrap(), (d.clone(), c.clone()));
        for bad in [
            "",
            "!!!",
            "bm9wZQ",
            &URL_SAFE_NO_PAD.encode("s1\nd1\nc#1"),
            &URL_SAFE_NO_PAD.encode("s1\nd2\nc1"),
            &URL_SAFE_NO_PAD.encode("s1\nd1\nc1\nx"),
        ] {
            assert!(
                matches!(decode_cursor(bad, &divs), Err(StoreError::InvalidCursor(_))),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn placeholders_are_numbered_after_the_fixed_ones() {
        assert_eq!(
            renumber(" AND a IN (?, ?) AND b = ?", 4),
            " AND a IN (?4, ?5) AND b = ?6"
        );
    }
}
