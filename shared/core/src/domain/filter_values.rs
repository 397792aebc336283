//! The values the list filters can take: for each of account class, bill group, account
//! source and site source, the distinct values among a set of contacts, each with the number
//! of contacts having it — what the managers' console offers as choices.
//!
//! It counts **contacts**, like `POST /v1/invitations/counts` (whose `total` a value's count
//! is the share of: filtering on one value of a field counts exactly that many contacts).
//! A value no contact has is absent; the empty string is a value like any other (accounts
//! synced without a class), since a filter on `""` selects those contacts.

use std::collections::BTreeMap;

use super::ContactRecord;

/// One of the four list filters of [`super::Filters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterField {
    AccountClass,
    BillGroup,
    AccountSource,
    SiteSource,
}

impl FilterField {
    pub const ALL: [FilterField; 4] = [
        FilterField::AccountClass,
        FilterField::BillGroup,
        FilterField::AccountSource,
        FilterField::SiteSource,
    ];

    /// The name of the field in [`super::Filters`] (and in the API).
    pub fn as_str(self) -> &'static str {
        match self {
            FilterField::AccountClass => "account_class",
            FilterField::BillGroup => "bill_group",
            FilterField::AccountSource => "account_source",
            FilterField::SiteSource => "site_source",
        }
    }

    /// The contact's value of this field.
    pub fn of(self, c: &ContactRecord) -> &str {
        match self {
            FilterField::AccountClass => &c.account_class,
            FilterField::BillGroup => &c.bill_group,
            FilterField::AccountSource => &c.account_source,
            FilterField::SiteSource => &c.site_source,
        }
    }

    fn index(self) -> usize {
        match self {
            FilterField::AccountClass => 0,
            FilterField::BillGroup => 1,
            FilterField::AccountSource => 2,
            FilterField::SiteSource => 3,
        }
    }
}

/// For each [`FilterField`], its distinct values with their number of contacts, sorted by
/// value (byte order). Zero counts are never kept, so two sets of the same contacts compare
/// equal however they were built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterValues {
    fields: [BTreeMap<String, u64>; 4],
}

impl FilterValues {
    /// Adds `n` contacts having `value` in `field`.
    pub fn add(&mut self, field: FilterField, value: &str, n: u64) {
        if n == 0 {
            return;
        }
        let counts = &mut self.fields[field.index()];
        match counts.get_mut(value) {
            Some(have) => *have += n,
            None => {
                counts.insert(value.to_owned(), n);
            }
        }
    }

    /// Adds `n` contacts sharing these four values (class, bill group, account source, site
    /// source): how stores that aggregate by combination fold their rows.
    pub fn add_combination(&mut self, values: [&str; 4], n: u64) {
        for (field, value) in FilterField::ALL.into_iter().zip(values) {
            self.add(field, value, n);
        }
    }

    /// Adds one contact: the single definition of what a contact contributes (the contract
    /// suite folds this over a division's contacts as the oracle of every store).
    pub fn add_contact(&mut self, c: &ContactRecord) {
        for field in FilterField::ALL {
            self.add(field, field.of(c), 1);
        }
    }

    /// Adds the counts of another set (e.g. another division's, for the total).
    pub fn merge(&mut self, other: &FilterValues) {
        for field in FilterField::ALL {
            for (value, n) in other.values(field) {
                self.add(field, value, n);
            }
        }
    }

    /// The values of `field` with their counts, sorted by value.
    pub fn values(&self, field: FilterField) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.fields[field.index()]
            .iter()
            .map(|(v, n)| (v.as_str(), *n))
    }

    /// No contact was counted.
    pub fn is_empty(&self) -> bool {
        self.fields.iter().all(BTreeMap::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(v: &FilterValues, f: FilterField) -> Vec<(String, u64)> {
        v.values(f).map(|(s, n)| (s.to_owned(), n)).collect()
    }

    #[test]
    fn values_sort_by_bytes_and_zero_counts_leave_no_trace() {
        let mut v = FilterValues::default();
        v.add(FilterField::BillGroup, "b", 2);
        v.add(FilterField::BillGroup, "B", 1);
        v.add(FilterField::BillGroup, "", 3);
        v.add(FilterField::BillGroup, "never", 0);
        v.add(FilterField::BillGroup, "b", 1);
        assert_eq!(
            collected(&v, FilterField::BillGroup),
            [("".into(), 3), ("B".into(), 1), ("b".into(), 3)]
        );
        assert_eq!(collected(&v, FilterField::AccountClass), []);
        assert_eq!(v, {
            let mut w = FilterValues::default();
            w.add(FilterField::BillGroup, "", 3);
            w.add(FilterField::BillGroup, "b", 3);
            w.add(FilterField::BillGroup, "B", 1);
            w
        });
    }

    #[test]
    fn a_combination_counts_in_each_field_and_merging_adds() {
        let mut a = FilterValues::default();
        a.add_combination(["Residential", "A", "Web", "North"], 2);
        let mut b = FilterValues::default();
        b.add_combination(["Residential", "B", "Web", "South"], 1);
        a.merge(&b);
        assert_eq!(
            collected(&a, FilterField::AccountClass),
            [("Residential".into(), 3)]
        );
        assert_eq!(
            collected(&a, FilterField::BillGroup),
            [("A".into(), 2), ("B".into(), 1)]
        );
        assert_eq!(
            collected(&a, FilterField::AccountSource),
            [("Web".into(), 3)]
        );
        assert_eq!(
            collected(&a, FilterField::SiteSource),
            [("North".into(), 2), ("South".into(), 1)]
        );
        assert!(!a.is_empty() && FilterValues::default().is_empty());
    }
}
