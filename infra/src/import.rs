//! `portal-invites import`: accounts and contacts from a CSV file, one row per contact.
//!
//! The import runs in two phases so a bad file writes nothing:
//!
//! 1. [`parse_csv`] reads and checks every row through the domain constructors, groups rows
//!    by `account_id` into [`Account`]s, and checks that rows of one account agree on the
//!    account's fields and that no contact id appears twice. The first problem stops it,
//!    named by line and column.
//! 2. [`import_file`] checks that every division exists for the tenant, then writes through
//!    the same use case as `POST /v1/sync/accounts` ([`usecases::sync::upsert_accounts`]).
//!
//! The write is an idempotent upsert in chunks; should the store itself fail half-way,
//! running the same import again finishes it.
//!
//! Columns (the header row is required; order is free): see [`COLUMNS`]. Booleans are
//! `true/false/yes/no/1/0` (any case); an empty `email` means the contact has no address.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use portal_core::domain::{
    Account, AccountId, ContactId, ContactInput, DivisionId, DomainError, Email, PortalKey,
    TenantId,
};
use portal_core::ports::{Store, SyncReport};
use portal_core::usecases::{self, UseCaseError};

/// The columns of an import file (every one required but those in [`OPTIONAL_COLUMNS`]).
pub const COLUMNS: [&str; 17] = [
    "account_id",
    "division_id",
    "number",
    "name",
    "class",
    "bill_group",
    "source",
    "site_source",
    "active_services",
    "balance_due_cents",
    "autopay",
    "contact_id",
    "contact_name",
    "email",
    "phone",
    "billing",
    "portal_key",
];

/// Columns a file may leave out: `portal_key` (the company's own key; absent or blank keeps
/// the stored key, or generates one for a new account).
pub const OPTIONAL_COLUMNS: [&str; 1] = ["portal_key"];

/// Most contacts one account may carry (the domain's limit, checked here to name the line).
const MAX_CONTACTS_PER_ACCOUNT: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: not valid CSV: {reason}")]
    Csv { line: u64, reason: String },
    #[error("the header row (line 1) {0}")]
    Header(String),
    #[error("line {line}, column {column}: {reason}")]
    Row {
        line: u64,
        column: &'static str,
        reason: String,
    },
    #[error(
        "line {line}: division {division} does not exist for tenant {tenant}; create it first \
         with `PUT /v1/divisions/{division}` and a body like \
         {{\"name\": \"...\", \"email_from\": \"...\"}} (a token with sync:write), then import again"
    )]
    UnknownDivision {
        line: u64,
        division: DivisionId,
        tenant: TenantId,
    },
    #[error(
        "writing to the store failed; the import is idempotent, so fix the cause and run it again"
    )]
    Store(#[source] UseCaseError),
}

impl ImportError {
    /// The line a row-level error is about, if any.
    pub fn line(&self) -> Option<u64> {
        match self {
            Self::Csv { line, .. }
            | Self::Row { line, .. }
            | Self::UnknownDivision { line, .. } => Some(*line),
            Self::Header(_) => Some(1),
            _ => None,
        }
    }
}

/// A checked file: accounts in order of first appearance, with the line each first appears on.
#[derive(Debug, Clone, Default)]
pub struct ParsedCsv {
    pub accounts: Vec<Account>,
    /// `first_lines[i]` is the line of `accounts[i]`'s first row.
    pub first_lines: Vec<u64>,
    /// Data rows read (= contacts).
    pub rows: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub rows: u64,
    pub divisions: u64,
    #[serde(flatten)]
    pub written: SyncReport,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} rows: {} accounts with {} contacts in {} divisions",
            self.rows, self.written.accounts, self.written.contacts, self.divisions,
        )?;
        if self.written.contacts_removed > 0 {
            write!(
                f,
                "; {} contacts no longer listed on their accounts were removed",
                self.written.contacts_removed
            )?;
        }
        Ok(())
    }
}

/// Reads, checks and writes an import file for a tenant. Nothing is written unless every row
/// is valid and every division exists.
#[tracing::instrument(skip_all, fields(tenant = %tenant, path = %path.display()))]
pub async fn import_file(
    store: &dyn Store,
    tenant: &TenantId,
    path: &Path,
) -> Result<ImportSummary, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.to_owned(),
        source,
    })?;
    let parsed = parse_csv(std::io::BufReader::new(file))?;
    import_parsed(store, tenant, parsed).await
}

/// Checks divisions and writes an already parsed file.
pub async fn import_parsed(
    store: &dyn Store,
    tenant: &TenantId,
    parsed: ParsedCsv,
) -> Result<ImportSummary, ImportError> {
    let known: Vec<DivisionId> = store
        .list_divisions(tenant)
        .await
        .map_err(|e| ImportError::Store(e.into()))?
        .into_iter()
        .map(|d| d.division_id)
        .collect();
    let mut divisions: Vec<&DivisionId> = Vec::new();
    for (a, line) in parsed.accounts.iter().zip(&parsed.first_lines) {
        if !known.contains(&a.division_id) {
            return Err(ImportError::UnknownDivision {
                line: *line,
                division: a.division_id.clone(),
                tenant: tenant.clone(),
            });
        }
        if !divisions.contains(&&a.division_id) {
            divisions.push(&a.division_id);
        }
    }
    let divisions = divisions.len() as u64;
    let written = usecases::sync::upsert_accounts(store, tenant, &parsed.accounts)
        .await
        .map_err(ImportError::Store)?;
    tracing::info!(
        rows = parsed.rows,
        accounts = written.accounts,
        "import written"
    );
    Ok(ImportSummary {
        rows: parsed.rows,
        divisions,
        written,
    })
}

/// Reads and checks a whole CSV file (phase 1). Writes nothing.
pub fn parse_csv<R: Read>(reader: R) -> Result<ParsedCsv, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header = rdr.headers().map_err(csv_error)?.clone();
    let cols = Columns::from_header(&header)?;

    let mut out = ParsedCsv::default();
    let mut by_account: HashMap<AccountId, usize> = HashMap::new();
    let mut contact_lines: HashMap<ContactId, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        out.rows += 1;
        let row = Row {
            line,
            record: &record,
            cols: &cols,
        };
        let (account, contact) = row.parse()?;
        if let Some(&prev) = contact_lines.get(&contact.contact_id) {
            return Err(row.err(
                "contact_id",
                format!(
                    "contact {} already appears on line {prev}; a contact id is unique within a tenant",
                    contact.contact_id
                ),
            ));
        }
        contact_lines.insert(contact.contact_id.clone(), line);
        match by_account.get(&account.account_id) {
            Some(&i) => {
                let first = &mut out.accounts[i];
                if let Some((column, theirs, ours)) = first_difference(first, &account) {
                    return Err(row.err(
                        column,
                        format!(
                            "account {} has {column} {ours:?} here but {theirs:?} on line {}; \
                             every row of an account must repeat the same account fields",
                            account.account_id, out.first_lines[i]
                        ),
                    ));
                }
                if first.contacts.len() >= MAX_CONTACTS_PER_ACCOUNT {
                    return Err(row.err(
                        "account_id",
                        format!(
                            "account {} has more than {MAX_CONTACTS_PER_ACCOUNT} contacts",
                            account.account_id
                        ),
                    ));
                }
                first.contacts.push(contact);
            }
            None => {
                by_account.insert(account.account_id.clone(), out.accounts.len());
                let mut account = account;
                account.contacts.push(contact);
                out.accounts.push(account);
                out.first_lines.push(line);
            }
        }
    }
    Ok(out)
}

fn csv_error(e: csv::Error) -> ImportError {
    let line = e.position().map_or(1, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "the text is not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    ImportError::Csv { line, reason }
}

/// Position of each known column in the file.
struct Columns([usize; COLUMNS.len()]);

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, ImportError> {
        let mut idx = [usize::MAX; COLUMNS.len()];
        for (i, raw) in header.iter().enumerate() {
            let name = raw.trim_start_matches('\u{feff}').trim();
            let Some(k) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(ImportError::Header(format!(
                    "has an unknown column {name:?}; the columns are: {}",
                    COLUMNS.join(",")
                )));
            };
            if idx[k] != usize::MAX {
                return Err(ImportError::Header(format!("names column {name:?} twice")));
            }
            idx[k] = i;
        }
        let missing: Vec<&str> = COLUMNS
            .iter()
            .zip(idx)
            .filter(|(c, i)| *i == usize::MAX && !OPTIONAL_COLUMNS.contains(c))
            .map(|(c, _)| *c)
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::Header(format!(
                "lacks the column(s) {}; the columns are: {}",
                missing.join(", "),
                COLUMNS.join(",")
            )));
        }
        Ok(Self(idx))
    }
}

/// One data row being parsed, for errors that name line and column.
struct Row<'a> {
    line: u64,
    record: &'a csv::StringRecord,
    cols: &'a Columns,
}

impl Row<'_> {
    fn get(&self, column: &'static str) -> &str {
        let k = COLUMNS.iter().position(|c| *c == column).unwrap_or(0);
        // An optional column the file leaves out reads as blank.
        self.record.get(self.cols.0[k]).unwrap_or("")
    }

    fn err(&self, column: &'static str, reason: impl Into<String>) -> ImportError {
        ImportError::Row {
            line: self.line,
            column,
            reason: reason.into(),
        }
    }

    /// A domain error, attributed to the column it is about (`fallback` when it names none).
    fn domain(&self, fallback: &'static str, e: DomainError) -> ImportError {
        let column = match &e {
            DomainError::InvalidId { kind, .. } => COLUMNS
                .iter()
                .find(|c| *c == kind)
                .copied()
                .unwrap_or(fallback),
            DomainError::InvalidEmail { .. } => "email",
            DomainError::InvalidField { field, .. } => match *field {
                "contact name" | "contact_name" => "contact_name",
                f => COLUMNS
                    .iter()
                    .find(|c| **c == f)
                    .copied()
                    .unwrap_or(fallback),
            },
        };
        self.err(column, e.to_string())
    }

    fn bool(&self, column: &'static str) -> Result<bool, ImportError> {
        match self.get(column).to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            other => Err(self.err(
                column,
                format!("{other:?} is not a boolean; use true/false, yes/no or 1/0"),
            )),
        }
    }

    /// The account (without contacts) and the contact this row describes.
    fn parse(&self) -> Result<(Account, ContactInput), ImportError> {
        let account_id =
            AccountId::parse(self.get("account_id")).map_err(|e| self.domain("account_id", e))?;
        let division_id = DivisionId::parse(self.get("division_id"))
            .map_err(|e| self.domain("division_id", e))?;
        let active_services = self.bool("active_services")?;
        let raw_balance = self.get("balance_due_cents");
        let balance_due_cents: i64 = raw_balance.parse().map_err(|_| {
            self.err(
                "balance_due_cents",
                format!("{raw_balance:?} is not a whole number of cents (e.g. 12550 for $125.50)"),
            )
        })?;
        let autopay = self.bool("autopay")?;
        let account = Account::new(
            account_id,
            division_id,
            self.get("number").to_owned(),
            self.get("name").to_owned(),
            self.get("class").to_owned(),
            self.get("bill_group").to_owned(),
            self.get("source").to_owned(),
            self.get("site_source").to_owned(),
            active_services,
            balance_due_cents,
            autopay,
            None,
            Vec::new(),
        )
        .map_err(|e| self.domain("account_id", e))?;
        let raw_key = self.get("portal_key").trim();
        let account = if raw_key.is_empty() {
            account
        } else {
            let key = PortalKey::parse(raw_key).map_err(|e| self.domain("portal_key", e))?;
            account.with_portal_key(Some(key))
        };

        let contact_id =
            ContactId::parse(self.get("contact_id")).map_err(|e| self.domain("contact_id", e))?;
        let raw_email = self.get("email");
        let email = if raw_email.is_empty() {
            None
        } else {
            Some(Email::parse(raw_email).map_err(|e| self.domain("email", e))?)
        };
        let billing = self.bool("billing")?;
        let contact = ContactInput::new(
            contact_id,
            self.get("contact_name").to_owned(),
            email,
            self.get("phone").to_owned(),
            billing,
        )
        .map_err(|e| self.domain("contact_id", e))?;
        Ok((account, contact))
    }
}

/// The first account field on which two rows of one account disagree:
/// `(column, first row's value, this row's value)`.
fn first_difference(a: &Account, b: &Account) -> Option<(&'static str, String, String)> {
    let key = |x: &Account| {
        x.portal_key
            .as_ref()
            .map(|k| k.as_str().to_owned())
            .unwrap_or_default()
    };
    let pairs: [(&'static str, String, String); 11] = [
        (
            "division_id",
            a.division_id.to_string(),
            b.division_id.to_string(),
        ),
        ("number", a.number.clone(), b.number.clone()),
        ("name", a.name.clone(), b.name.clone()),
        ("class", a.class.clone(), b.class.clone()),
        ("bill_group", a.bill_group.clone(), b.bill_group.clone()),
        ("source", a.source.clone(), b.source.clone()),
        ("site_source", a.site_source.clone(), b.site_source.clone()),
        (
            "active_services",
            a.active_services.to_string(),
            b.active_services.to_string(),
        ),
        (
            "balance_due_cents",
            a.balance_due_cents.to_string(),
            b.balance_due_cents.to_string(),
        ),
        ("autopay", a.autopay.to_string(), b.autopay.to_string()),
        ("portal_key", key(a), key(b)),
    ];
    pairs.into_iter().find(|(_, x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "account_id,division_id,number,name,class,bill_group,source,site_source,active_services,balance_due_cents,autopay,contact_id,contact_name,email,phone,billing\n";

    fn parse(body: &str) -> Result<ParsedCsv, ImportError> {
        parse_csv(format!("{HEADER}{body}").as_bytes())
    }

    fn row_error(body: &str) -> (u64, &'static str, String) {
        match parse(body) {
            Err(ImportError::Row {
                line,
                column,
                reason,
            }) => (line, column, reason),
            other => panic!("expected a row error, got {other:?}"),
        }
    }

    const GOOD: &str = "\
A1,north,1001,Ada Lovelace,Residential,Monthly,CRM,Web,yes,12550,no,C1,Ada Lovelace,ada@example.com,555-0100,true
A2,north,1002,Bob Builder,Commercial,Quarterly,CRM,Phone,1,0,1,C2,Bob,,555-0101,0
A1,north,1001,Ada Lovelace,Residential,Monthly,CRM,Web,YES,12550,No,C3,Charles Babbage,charles@example.com,,false
";

    #[test]
    fn rows_of_one_account_become_one_account_with_its_contacts() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.rows, 3);
        assert_eq!(p.accounts.len(), 2);
        assert_eq!(p.first_lines, [2, 3]);
        let a1 = &p.accounts[0];
        assert_eq!(a1.account_id.as_str(), "A1");
        assert_eq!(a1.contacts.len(), 2);
        assert!(a1.active_services && !a1.autopay);
        assert_eq!(a1.balance_due_cents, 12550);
        assert!(a1.contacts[0].billing && !a1.contacts[1].billing);
        let a2 = &p.accounts[1];
        assert_eq!(
            a2.contacts[0].email, None,
            "an empty email means no address"
        );
        assert!(a2.autopay);
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let csv = "contact_id,account_id,division_id,number,name,class,bill_group,source,site_source,active_services,balance_due_cents,autopay,contact_name,email,phone,billing\n\
                   C1,A1,north,1001,Ada,R,M,CRM,Web,true,0,false,Ada,ada@example.com,,true\n";
        let p = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(p.accounts[0].contacts[0].contact_id.as_str(), "C1");
    }

    #[test]
    fn a_bad_email_is_reported_with_its_line_and_column() {
        let body = "\
A1,north,1001,Ada,R,M,CRM,Web,true,0,false,C1,Ada,ada@example.com,,true
A2,north,1002,Bob,R,M,CRM,Web,true,0,false,C2,Bob,bob-at-example.com,,true
";
        let (line, column, reason) = row_error(body);
        assert_eq!((line, column), (3, "email"));
        assert!(reason.contains("bob-at-example.com"), "{reason}");
    }

    #[test]
    fn a_bad_boolean_names_the_accepted_spellings() {
        let (line, column, reason) =
            row_error("A1,north,1001,Ada,R,M,CRM,Web,maybe,0,false,C1,Ada,,,true\n");
        assert_eq!((line, column), (2, "active_services"));
        assert!(reason.contains("yes/no"), "{reason}");
    }

    #[test]
    fn a_bad_balance_and_a_bad_id_name_their_columns() {
        let (_, column, _) =
            row_error("A1,north,1001,Ada,R,M,CRM,Web,true,12.50,false,C1,,,,true\n");
        assert_eq!(column, "balance_due_cents");
        let (_, column, _) = row_error("A1,north,1001,Ada,R,M,CRM,Web,true,0,false,C 1,,,,true\n");
        assert_eq!(column, "contact_id");
        let (_, column, _) = row_error("A1,no#rth,1001,Ada,R,M,CRM,Web,true,0,false,C1,,,,true\n");
        assert_eq!(column, "division_id");
        let (_, column, _) = row_error("A1,north,,Ada,R,M,CRM,Web,true,0,false,C1,,,,true\n");
        assert_eq!(column, "number");
    }

    #[test]
    fn rows_of_one_account_that_disagree_are_refused_naming_both_lines() {
        let body = "\
A1,north,1001,Ada,R,M,CRM,Web,true,0,false,C1,Ada,,,true
A1,north,1001,Ada,R,M,CRM,Web,true,500,false,C2,Bob,,,true
";
        let (line, column, reason) = row_error(body);
        assert_eq!((line, column), (3, "balance_due_cents"));
        assert!(reason.contains("line 2"), "{reason}");
    }

    #[test]
    fn a_contact_id_used_twice_is_refused() {
        let body = "\
A1,north,1001,Ada,R,M,CRM,Web,true,0,false,C1,Ada,,,true
A2,north,1002,Bob,R,M,CRM,Web,true,0,false,C1,Bob,,,true
";
        let (line, column, reason) = row_error(body);
        assert_eq!((line, column), (3, "contact_id"));
        assert!(reason.contains("line 2"), "{reason}");
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = parse_csv("account_id,division_id\nA1,north\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lacks the column(s) number, name"), "{err}");
    }

    #[test]
    fn a_misspelt_column_is_named() {
        let header = HEADER.replace("bill_group", "billgroup");
        let err = parse_csv(header.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("\"billgroup\""), "{err}");
    }

    #[test]
    fn a_short_row_is_reported_with_its_line() {
        let err = parse("A1,north,1001\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.to_string().contains("expected 16 fields"), "{err}");
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_ignored() {
        let csv = format!("\u{feff}{HEADER}{GOOD}");
        assert_eq!(parse_csv(csv.as_bytes()).unwrap().accounts.len(), 2);
    }

    #[test]
    fn the_sample_file_imports_into_the_demo_divisions() {
        let p = parse_csv(include_str!("../fixtures/contacts.csv").as_bytes()).unwrap();
        assert_eq!((p.rows, p.accounts.len()), (5, 3));
        let demo: Vec<&str> = portal_core::demo::DEMO_DIVISIONS
            .iter()
            .map(|d| d.0)
            .collect();
        assert!(p
            .accounts
            .iter()
            .all(|a| demo.contains(&a.division_id.as_str())));
        assert_eq!(p.accounts[2].name, "Nguyen Bakery, LLC");
        assert_eq!(p.accounts[2].contacts[1].email, None);
    }

    #[test]
    fn an_account_with_too_many_contacts_is_refused_at_the_first_row_over() {
        let body: String = (0..=MAX_CONTACTS_PER_ACCOUNT)
            .map(|i| format!("A1,north,1001,Ada,R,M,CRM,Web,true,0,false,C{i},,,,true\n"))
            .collect();
        let (line, column, _) = row_error(&body);
        assert_eq!(
            (line, column),
            (MAX_CONTACTS_PER_ACCOUNT as u64 + 2, "account_id")
        );
    }
}
