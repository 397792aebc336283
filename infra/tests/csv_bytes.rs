//! The CSV import's parser never panics on bytes: arbitrary input and mutations of a valid
//! file answer rows or an `ImportError` naming the line, never a panic (see also
//! `tests/parsers`, where every other parser facing the outside is held to the same rule and
//! to an allocation bound).

use portal_invites::import::parse_csv;
use proptest::prelude::*;

const VALID: &str = include_str!("../fixtures/contacts.csv");

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seed = VALID.as_bytes();
    prop::collection::vec((0..seed.len(), any::<u8>(), 0u8..4), 1..8).prop_map(move |edits| {
        let mut out = seed.to_vec();
        for (at, byte, kind) in edits {
            let at = at.min(out.len());
            match kind {
                0 if at < out.len() => out[at] = byte,
                1 => out.truncate(at),
                2 => out.insert(at, byte),
                _ if at < out.len() => {
                    out.remove(at);
                }
                _ => {}
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_csv_parser_answers_rows_or_an_error_for_any_bytes(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..4096), mutated()]
    ) {
        match parse_csv(bytes.as_slice()) {
            Ok(parsed) => prop_assert!(parsed.rows <= bytes.len() as u64),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn the_sample_file_parses() {
    let parsed = parse_csv(VALID.as_bytes()).expect("the sample file is valid");
    assert!(parsed.rows > 0);
}
