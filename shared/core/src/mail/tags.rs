//! The message tags an invitation email carries, so that every delivery event about it
//! (SES events, however they arrive) finds its invitation: tenant, campaign and contact.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The message tag naming the tenant (set by the send step).
pub const TAG_TENANT: &str = "tenant";
/// The message tag naming the campaign.
pub const TAG_CAMPAIGN: &str = "campaign";
/// The message tag naming the invitation, by its contact id.
pub const TAG_INVITATION: &str = "invitation";

/// SES accepts only ASCII letters, digits, `_` and `-` in a message tag's value, and our ids
/// may hold more (`.`, `:`...). A value of those characters not starting with `_` is sent as
/// it is (campaign ids, most tenant and contact ids); any other is `_` followed by its
/// URL-safe base64, so the two never collide.
pub fn encode_tag_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value.starts_with('_')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        value.to_owned()
    } else {
        format!("_{}", URL_SAFE_NO_PAD.encode(value.as_bytes()))
    }
}

/// The value [`encode_tag_value`] encoded; `None` for a value it cannot have made.
pub fn decode_tag_value(tag: &str) -> Option<String> {
    match tag.strip_prefix('_') {
        Some(encoded) => String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok(),
        None => Some(tag.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_outside_ses_alphabet_round_trip_and_plain_ones_stay_plain() {
        for v in [
            "acme",
            "c-0001",
            "0123456789abcdef",
            "a.b:c",
            "_x",
            "Ünïcode",
            "x y",
        ] {
            let encoded = encode_tag_value(v);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{encoded}"
            );
            assert_eq!(decode_tag_value(&encoded).as_deref(), Some(v));
        }
        assert_eq!(encode_tag_value("c-0001"), "c-0001");
        assert_eq!(decode_tag_value("_!!"), None);
    }
}
