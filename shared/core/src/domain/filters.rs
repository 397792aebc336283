//! The manager's filters: which contacts of the chosen divisions a count, list or send covers.

use serde::{Deserialize, Serialize};

use super::{ContactRecord, DomainError};

/// Most accepted values per list filter.
pub const MAX_FILTER_VALUES: usize = 100;

/// Each list is a set of accepted values (empty = any). Each switch, when `true`, restricts;
/// `false` means no restriction (not "only the opposite").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    pub account_class: Vec<String>,
    pub bill_group: Vec<String>,
    pub account_source: Vec<String>,
    pub site_source: Vec<String>,
    /// Only accounts with at least one active service.
    pub active_services: bool,
    /// Only accounts with a balance due (> 0).
    pub balance_due: bool,
    /// Only billing contacts.
    pub billing_contacts_only: bool,
    /// Only accounts without automatic payment.
    pub without_autopay: bool,
}

impl Filters {
    /// Checks list sizes and values; call once at the edge.
    pub fn validate(self) -> Result<Self, DomainError> {
        for (field, values) in [
            ("filters.account_class", &self.account_class),
            ("filters.bill_group", &self.bill_group),
            ("filters.account_source", &self.account_source),
            ("filters.site_source", &self.site_source),
        ] {
            if values.len() > MAX_FILTER_VALUES {
                return Err(DomainError::InvalidField {
                    field,
                    reason: format!("at most {MAX_FILTER_VALUES} values"),
                });
            }
            // Characters, as the API document's `maxLength` counts them (not bytes).
            if values.iter().any(|v| v.chars().count() > 200) {
                return Err(DomainError::InvalidField {
                    field,
                    reason: "values must be at most 200 characters".into(),
                });
            }
        }
        Ok(self)
    }

    /// Whether a contact passes every filter. The single definition of filtering: stores may
    /// push filters down as an optimisation but must agree with this (the contract suite checks).
    pub fn matches(&self, c: &ContactRecord) -> bool {
        let one_of =
            |accepted: &[String], v: &str| accepted.is_empty() || accepted.iter().any(|a| a == v);
        one_of(&self.account_class, &c.account_class)
            && one_of(&self.bill_group, &c.bill_group)
            && one_of(&self.account_source, &c.account_source)
            && one_of(&self.site_source, &c.site_source)
            && (!self.active_services || c.active_services)
            && (!self.balance_due || c.balance_due_cents > 0)
            && (!self.billing_contacts_only || c.billing)
            && (!self.without_autopay || !c.autopay)
    }
}
