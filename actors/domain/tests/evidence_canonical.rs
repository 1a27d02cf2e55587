//! Canonical JSON against RFC 8785's own examples, and the digest helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Serialize;
use serde_json::{json, Value};
use stella_domain::canonical::{
    canonical_bytes, canonical_string, sha256_hex, to_canonical_vec, CanonicalError, Digest,
};

fn canon_text(text: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap();
    canonical_string(&value)
}

/// RFC 8785 §3.2.2: the example with every kind of primitive.
#[test]
fn rfc8785_primitives_example() {
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50,
                  2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    assert_eq!(
        canon_text(input),
        r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
    );
}

/// RFC 8785 §3.2.3: member names sorted by UTF-16 code units, whatever the input order.
#[test]
fn rfc8785_sorting_example() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    assert_eq!(
        canon_text(input),
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

/// The JCS reference test data's "weird" names: controls, `</script>`, astral characters.
#[test]
fn jcs_weird_member_names() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "1": "One",
      "\u0080": "Control\u007f",
      "\ud83d\ude02": "Smiley",
      "\u00f6": "Latin Small Letter O With Diaeresis",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "</script>": "Browser Challenge"
    }"#;
    assert_eq!(
        canon_text(input),
        "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f602}\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

/// RFC 8785 Appendix B: IEEE 754 doubles (by bit pattern) and their canonical text.
#[test]
fn rfc8785_appendix_b_numbers() {
    let samples: [(u64, &str); 24] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for (bits, expected) in samples {
        let f = f64::from_bits(bits);
        // Through a `Value` and straight from a serializable f64: the same text.
        let value = Value::from(serde_json::Number::from_f64(f).unwrap());
        assert_eq!(canonical_string(&value), expected, "{bits:016x}");
        assert_eq!(
            to_canonical_vec(&f).unwrap(),
            expected.as_bytes(),
            "{bits:016x}"
        );
        // And the canonical text reads back as the same double.
        let back: f64 = expected.parse().unwrap();
        assert_eq!(back, if f == 0.0 { 0.0 } else { f }, "{bits:016x}");
    }
}

#[test]
fn non_finite_numbers_are_refused_not_nulled() {
    #[derive(Serialize)]
    struct Score {
        name: &'static str,
        cvss: f64,
    }
    for cvss in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = to_canonical_vec(&Score { name: "x", cvss }).unwrap_err();
        assert_eq!(err, CanonicalError::NonFiniteNumber);
    }
    // Nested inside collections and options too.
    let nested: Vec<Option<Vec<f32>>> = vec![None, Some(vec![1.0, f32::NAN])];
    assert_eq!(
        to_canonical_vec(&nested).unwrap_err(),
        CanonicalError::NonFiniteNumber
    );
    // Finite values of the same shape are fine.
    assert_eq!(
        to_canonical_vec(&Score {
            name: "x",
            cvss: 9.8
        })
        .unwrap(),
        br#"{"cvss":9.8,"name":"x"}"#
    );
}

#[test]
fn integers_are_written_exactly() {
    let v = json!({"small": 7, "neg": -42, "max_u64": u64::MAX, "min_i64": i64::MIN});
    assert_eq!(
        canonical_string(&v),
        r#"{"max_u64":18446744073709551615,"min_i64":-9223372036854775808,"neg":-42,"small":7}"#
    );
    // A float with an integral value has no fraction or exponent.
    assert_eq!(canonical_string(&json!([1.0, -0.0, 100.0])), "[1,0,100]");
}

#[test]
fn formatting_and_member_order_of_the_input_do_not_matter() {
    let a = canon_text(r#"{ "b" : [1, {"y":2, "x":1}], "a": "s" }"#);
    let b = canon_text("{\"a\":\"s\",\n\"b\":[1.0,{\"x\":1e0,\"y\":20e-1}]}");
    assert_eq!(a, b);
    assert_eq!(a, r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
    assert_eq!(canonical_bytes(&json!({})), b"{}");
    assert_eq!(canonical_bytes(&json!([])), b"[]");
}

#[test]
fn sha256_known_answers() {
    // FIPS 180-2 "abc" and the empty string.
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let empty = Digest::sha256(b"");
    assert_eq!(
        empty.to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(empty.hex(), sha256_hex(b""));
}

#[test]
fn digest_round_trips_through_text_and_json() {
    let d = Digest::sha256(b"sbom");
    let text = d.to_string();
    assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
    assert_eq!(text.parse::<Digest>().unwrap(), d);
    assert_eq!(Digest::from_hex(&d.hex()).unwrap(), d);
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    // Garbage is refused with the offending text in the error.
    let err = "sha256:xyz".parse::<Digest>().unwrap_err();
    assert_eq!(err, CanonicalError::InvalidDigest("sha256:xyz".into()));
    assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
}

#[test]
fn canonical_digest_ignores_member_order() {
    let a: Value = serde_json::from_str(r#"{"a":1,"b":[true,null]}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"b":[true,null],"a":1}"#).unwrap();
    assert_eq!(
        Digest::of_canonical(&a).unwrap(),
        Digest::of_canonical(&b).unwrap()
    );
    assert_eq!(
        Digest::of_canonical(&a).unwrap(),
        Digest::sha256(br#"{"a":1,"b":[true,null]}"#)
    );
}

/// Over many bit patterns (a fixed xorshift sequence, so every run checks the same ones):
/// the text reads back as the same double and is as short as Rust's shortest form.
#[test]
fn numbers_round_trip_with_the_fewest_digits() {
    fn significant_digits(text: &str) -> usize {
        let mantissa = text.split(['e', 'E']).next().unwrap();
        mantissa
            .trim_start_matches('-')
            .replace('.', "")
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len()
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut checked = 0;
    while checked < 20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let f = f64::from_bits(state);
        if !f.is_finite() || f == 0.0 {
            continue;
        }
        checked += 1;
        let text = stella_domain::canonical::ecmascript_number(f).unwrap();
        assert_eq!(text.parse::<f64>().unwrap(), f, "{text} for {state:016x}");
        assert_eq!(
            significant_digits(&text),
            significant_digits(&format!("{f:e}")),
            "{text} for {state:016x}"
        );
    }
}
