//! Opaque list cursors: a tag naming the list and the last key returned, as URL-safe
//! base64. Every store's cursors are made and read here, so a cursor of one list never
//! parses as another's (the tag differs) and any text a client forges fails to decode.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Longest cursor accepted before decoding.
pub const MAX_CURSOR_LEN: usize = 200;

/// The cursor of `tag`'s list after `after`.
pub fn encode(tag: &str, after: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{after}"))
}

/// The key a cursor of `tag`'s list carries; `None` for anything else.
pub fn decode(tag: &str, raw: &str) -> Option<String> {
    if raw.len() > MAX_CURSOR_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(tag)?.strip_prefix(':').map(str::to_owned)
}

/// The key a cursor of `tag`'s list carries, parsed as an id: a cursor of another list,
/// a forgery, or a key that is no valid id is [`StoreError::InvalidCursor`].
pub fn decode_id<T, E>(
    tag: &str,
    raw: &str,
    parse: impl FnOnce(String) -> Result<T, E>,
) -> Result<T, super::StoreError> {
    decode(tag, raw)
        .and_then(|key| parse(key).ok())
        .ok_or_else(|| super::StoreError::InvalidCursor("cursor is malformed".into()))
}

/// Tag of the cursors of [`DivisionStore::list_divisions_page`](super::DivisionStore).
pub const DIVISIONS: &str = "div1";
/// Tag of the cursors of [`TemplateStore::list_templates`](super::TemplateStore).
pub const TEMPLATES: &str = "tpl1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_lists_and_forgeries() {
        let c = encode("inv1", "c-1");
        assert_eq!(decode("inv1", &c).as_deref(), Some("c-1"));
        assert_eq!(decode("cmp1", &c), None);
        for bad in ["", "!!", &"A".repeat(300)] {
            assert_eq!(decode("inv1", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn id_cursors_refuse_keys_that_are_no_id() {
        use crate::domain::DivisionId;
        let ok = encode(DIVISIONS, "hoa-1");
        assert_eq!(
            decode_id(DIVISIONS, &ok, DivisionId::parse).unwrap(),
            DivisionId::parse("hoa-1").unwrap()
        );
        for bad in [
            encode(DIVISIONS, ""),
            encode(TEMPLATES, "hoa-1"),
            "x".into(),
        ] {
            assert!(
                decode_id(DIVISIONS, &bad, DivisionId::parse).is_err(),
                "{bad:?}"
            );
        }
    }
}
