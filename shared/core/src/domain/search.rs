//! Recipient search: a case-insensitive substring match over a few fields of a contact or an
//! invitation. Stores keep one [`SearchText`] per record so the backend can match it
//! (SQLite `instr`, DynamoDB `contains`) exactly as [`SearchText::matches`] does here.

/// Joins the fields of a search text. No searchable field can contain it (names, numbers and
/// addresses refuse control characters), so a needle without it matches the joined text
/// exactly when it matches one field.
pub const SEPARATOR: char = '\u{1}';

/// The lowercased searchable fields of one record, joined by [`SEPARATOR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    /// The search text of `fields`, in order (an absent field is an empty one).
    pub fn of<'a>(fields: impl IntoIterator<Item = &'a str>) -> Self {
        let mut text = String::new();
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                text.push(SEPARATOR);
            }
            text.push_str(&field.to_lowercase());
        }
        SearchText(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether `needle` (lowercased, see [`needle`]) occurs in one of the fields.
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty() || (!needle.contains(SEPARATOR) && self.0.contains(needle))
    }
}

/// A search as typed, lowercased the way [`SearchText`] lowercases fields.
pub fn needle(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_needle_matches_inside_one_field_never_across_two() {
        let t = SearchText::of(["Ann@Example.org", "Ann Lee", "A-100"]);
        assert!(t.matches("example"));
        assert!(t.matches("ann lee"));
        assert!(t.matches("a-1"));
        assert!(t.matches(""));
        assert!(!t.matches("organn"));
        assert!(!t.matches(&format!("org{SEPARATOR}ann")));
    }

    proptest! {
        #[test]
        fn matching_the_text_is_matching_some_field(
            fields in proptest::collection::vec("[a-zA-Z0-9 @.-]{0,12}", 1..4),
            needle_raw in "[a-zA-Z0-9 @.-]{0,4}",
        ) {
            let n = needle(&needle_raw);
            let text = SearchText::of(fields.iter().map(String::as_str));
            let any = n.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&n));
            prop_assert_eq!(text.matches(&n), any);
        }
    }
}
