//! Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and content digests.
//!
//! Anything Stella hashes or signs (in-toto statements, export manifests, verdict inputs)
//! is first written in one byte form, so that the same value gives the same digest in
//! every process, on every machine and after a round trip through a store:
//!
//! - object members sorted by their names compared as UTF-16 code units (RFC 8785 §3.2.3,
//!   which is not the same as Rust's `str` order once characters above U+FFFF appear);
//! - no whitespace between tokens;
//! - strings with the minimal escaping of ECMAScript's `JSON.stringify`: `\"`, `\\`, the
//!   short forms `\b \t \n \f \r`, `\u00xx` (lowercase hex) for other controls below
//!   U+0020, every other character as literal UTF-8;
//! - numbers as ECMAScript's `Number.prototype.toString` writes an IEEE 754 double:
//!   shortest round-trip digits, `1e+21` from 10²¹ on, `0.000001` but `1e-7`, `-0` as `0`.
//!   NaN and the infinities are rejected ([`CanonicalError::NonFiniteNumber`]); serde_json
//!   would silently turn them into `null`, which must never happen to signed data.
//!
//! One deliberate deviation: integers that serde_json holds as `u64`/`i64` are written
//! exactly, digit for digit. RFC 8785 assumes I-JSON, where numbers are doubles and integers
//! beyond ±2⁵³ lose precision; inside that range the output is identical, beyond it Stella
//! keeps the exact value rather than a rounded one. Producers that need interoperable
//! canonical forms with other JCS implementations should keep such values in strings.
//!
//! Digests are SHA-256, written `sha256:<64 lowercase hex digits>` ([`Digest`]); the bare hex
//! form is what in-toto subjects carry ([`sha256_hex`]).
//!
//! Not here: parsing JSON text (use `serde_json`; the canonical form of a document is the
//! canonical form of its parsed value), other digest algorithms.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Why a value has no canonical form, or a digest string is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// NaN or ±infinity somewhere in the value; JSON has no spelling for them.
    #[error("number is not finite (NaN or infinity has no JSON form)")]
    NonFiniteNumber,
    /// The value's `Serialize` implementation failed (for example a map with non-string keys).
    #[error("value cannot be serialized as JSON: {0}")]
    Serialize(String),
    /// A digest string that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
}

/// The canonical (RFC 8785) bytes of any serializable value.
///
/// The value goes through `serde_json::Value` first, so the field names and shapes are the
/// ones its `Serialize` implementation gives with `serde_json`.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    to_canonical_string(value).map(String::into_bytes)
}

/// [`to_canonical_vec`] as a `String` (canonical JSON is always valid UTF-8).
pub fn to_canonical_string<T: Serialize + ?Sized>(value: &T) -> Result<String, CanonicalError> {
    // serde_json turns non-finite floats into `null` on the way to a `Value`; look for them
    // first so that they are refused instead of changed.
    value.serialize(finite::FiniteCheck)?;
    let value =
        serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    Ok(canonical_string(&value))
}

/// The canonical (RFC 8785) bytes of a JSON value. Infallible: a `serde_json::Value` cannot
/// hold a non-finite number.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, value);
    out.into_bytes()
}

/// The canonical form as a `String` (it is always valid UTF-8).
pub fn canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        // A `Value` only ever holds finite floats; `null` keeps this total without a panic.
        match ecmascript_number(f) {
            Some(text) => out.push_str(&text),
            None => out.push_str("null"),
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An IEEE 754 double as ECMAScript's `Number.prototype.toString` writes it (ECMA-262
/// Number::toString, radix 10), or `None` for NaN and the infinities.
///
/// The digits come from Ryu: the shortest string that reads back as the same double and,
/// among those, the closest, ties to even (`1424953923781206.25` → `…206.2`), which is what
/// ECMAScript engines and RFC 8785 require. Rust's own `{}`/`{:e}` formatting finds the
/// same length but breaks such ties upwards. Only the placement of the decimal point and
/// the exponent notation are ECMAScript's own.
pub fn ecmascript_number(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    if value == 0.0 {
        // Both +0 and -0.
        return Some("0".to_owned());
    }
    let mut buffer = ryu::Buffer::new();
    let (digits, n) = decimal_digits(buffer.format_finite(value.abs()))?;
    // ECMA-262 names: k significant digits, the value is 0.digits × 10^n.
    let k = i32::try_from(digits.len()).ok()?;
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', usize::try_from(n - k).ok()?));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(usize::try_from(n).ok()?);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', usize::try_from(-n).ok()?));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    Some(out)
}

/// The significant digits of a positive decimal (`12.5`, `1e-7`, `1.5E22`, `0.001`),
/// without leading or trailing zeros, and the position `n` of the decimal point such that
/// the value is `0.digits × 10^n`.
fn decimal_digits(text: &str) -> Option<(String, i32)> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0').to_owned();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = i32::try_from(int.len()).ok()? + exponent - i32::try_from(leading).ok()?;
    Some((digits, n))
}

/// Lowercase hex SHA-256 of `bytes` (64 characters), the form in-toto subject digests use.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A SHA-256 content digest, written and parsed as `sha256:<64 lowercase hex digits>`.
///
/// Serializes as that string. Equality is byte equality of the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The `sha256:` prefix of the written form.
    pub const PREFIX: &'static str = "sha256:";

    /// The digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of the canonical form of `value`.
    pub fn of_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Self, CanonicalError> {
        Ok(Self::sha256(&to_canonical_vec(value)?))
    }

    /// A digest from its raw 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the bare 64-hex-digit form (lowercase, as in-toto subjects carry it).
    pub fn from_hex(hex_digits: &str) -> Result<Self, CanonicalError> {
        let invalid = || CanonicalError::InvalidDigest(hex_digits.to_owned());
        if hex_digits.len() != 64 || hex_digits.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.hex())
    }
}

impl FromStr for Digest {
    type Err = CanonicalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_digits = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| CanonicalError::InvalidDigest(s.to_owned()))?;
        Self::from_hex(hex_digits).map_err(|_| CanonicalError::InvalidDigest(s.to_owned()))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A serializer that produces nothing and fails on the first non-finite float, so that
/// [`to_canonical_vec`] can refuse what `serde_json::to_value` would quietly turn into null.
mod finite {
    use serde::ser::{self, Serialize};

    use super::CanonicalError;

    impl ser::Error for CanonicalError {
        fn custom<T: std::fmt::Display>(msg: T) -> Self {
            CanonicalError::Serialize(msg.to_string())
        }
    }

    pub(super) struct FiniteCheck;

    type R = Result<(), CanonicalError>;

    fn float(v: f64) -> R {
        if v.is_finite() {
            Ok(())
        } else {
            Err(CanonicalError::NonFiniteNumber)
        }
    }

    impl ser::Serializer for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        type SerializeSeq = Self;
        type SerializeTuple = Self;
        type SerializeTupleStruct = Self;
        type SerializeTupleVariant = Self;
        type SerializeMap = Self;
        type SerializeStruct = Self;
        type SerializeStructVariant = Self;

        fn serialize_bool(self, _: bool) -> R {
            Ok(())
        }
        fn serialize_i8(self, _: i8) -> R {
            Ok(())
        }
        fn serialize_i16(self, _: i16) -> R {
            Ok(())
        }
        fn serialize_i32(self, _: i32) -> R {
            Ok(())
        }
        fn serialize_i64(self, _: i64) -> R {
            Ok(())
        }
        fn serialize_i128(self, _: i128) -> R {
            Ok(())
        }
        fn serialize_u8(self, _: u8) -> R {
            Ok(())
        }
        fn serialize_u16(self, _: u16) -> R {
            Ok(())
        }
        fn serialize_u32(self, _: u32) -> R {
            Ok(())
        }
        fn serialize_u64(self, _: u64) -> R {
            Ok(())
        }
        fn serialize_u128(self, _: u128) -> R {
            Ok(())
        }
        fn serialize_f32(self, v: f32) -> R {
            float(f64::from(v))
        }
        fn serialize_f64(self, v: f64) -> R {
            float(v)
        }
        fn serialize_char(self, _: char) -> R {
            Ok(())
        }
        fn serialize_str(self, _: &str) -> R {
            Ok(())
        }
        fn serialize_bytes(self, _: &[u8]) -> R {
            Ok(())
        }
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
            value.serialize(self)
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> R {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            value: &T,
        ) -> R {
            value.serialize(self)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CanonicalError> {
            Ok(self)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self, CanonicalError> {
            Ok(self)
        }
    }

    impl ser::SerializeSeq for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeTuple for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeTupleStruct for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeTupleVariant for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeMap for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
            key.serialize(FiniteCheck)
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeStruct for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeStructVariant for FiniteCheck {
        type Ok = ();
        type Error = CanonicalError;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> R {
            value.serialize(FiniteCheck)
        }
        fn end(self) -> R {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn utf16_order_differs_from_utf8_order_above_the_bmp() {
        // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB33 there, after it in UTF-8.
        let v = json!({"\u{fb33}": 1, "\u{1f600}": 2});
        assert_eq!(canonical_string(&v), "{\"\u{1f600}\":2,\"\u{fb33}\":1}");
    }

    #[test]
    fn control_characters_use_lowercase_unicode_escapes() {
        let v = json!("\u{1}\u{1f}\u{7f}\u{2028}");
        assert_eq!(canonical_string(&v), "\"\\u0001\\u001f\u{7f}\u{2028}\"");
    }

    #[test]
    fn exponent_forms_follow_ecmascript() {
        assert_eq!(ecmascript_number(1e21).unwrap(), "1e+21");
        assert_eq!(ecmascript_number(1e20).unwrap(), "100000000000000000000");
        assert_eq!(ecmascript_number(1e-7).unwrap(), "1e-7");
        assert_eq!(ecmascript_number(1.5e-7).unwrap(), "1.5e-7");
        assert_eq!(ecmascript_number(0.1).unwrap(), "0.1");
        assert_eq!(ecmascript_number(-2.5).unwrap(), "-2.5");
        assert_eq!(ecmascript_number(123.0).unwrap(), "123");
        assert_eq!(ecmascript_number(f64::NAN), None);
        assert_eq!(ecmascript_number(f64::NEG_INFINITY), None);
    }

    #[test]
    fn digest_rejects_uppercase_and_wrong_length() {
        let lower = "sha256:".to_owned() + &"ab".repeat(32);
        assert!(lower.parse::<Digest>().is_ok());
        assert!(lower.to_uppercase().parse::<Digest>().is_err());
        assert!(("sha256:".to_owned() + &"AB".repeat(32))
            .parse::<Digest>()
            .is_err());
        assert!(("sha256:".to_owned() + &"ab".repeat(31))
            .parse::<Digest>()
            .is_err());
        assert!(("sha512:".to_owned() + &"ab".repeat(32))
            .parse::<Digest>()
            .is_err());
    }
}
