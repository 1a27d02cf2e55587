use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A tenant id: a lowercase slug (`a-z`, `0-9`, `-`), 1 to 63 characters, starting with a
/// letter and not ending with `-`. Parsing is the only way to make one, so every
/// `TenantId` in the program is valid, and safe inside object keys and stream names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        if is_slug(value, 63) {
            Ok(Self(value.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "tenant id {value:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

/// A lowercase slug: 1 to `max_len` characters of `a-z`, `0-9` and `-`, starting with a
/// letter and not ending with `-`. Safe in object keys, stream names and URLs.
pub(crate) fn is_slug(value: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Generates a time-ordered (UUIDv7) id newtype: sortable, unique across processes.
macro_rules! uuid_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(format!(
                    concat!($prefix, "_{}"),
                    uuid::Uuid::now_v7().simple()
                ))
            }

            /// Accepts any id this type generated (and ids read back from storage).
            pub fn parse(value: &str) -> Result<Self, StoreError> {
                let ok = value
                    .strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|rest| uuid::Uuid::try_parse(rest).is_ok());
                if ok {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(StoreError::Invalid(format!(
                        concat!("{:?} is not a valid ", $prefix, " id"),
                        value
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(JobId, "job");
uuid_id!(TokenId, "tok");
uuid_id!(TargetId, "tgt");
uuid_id!(ScheduleId, "sch");
uuid_id!(RunId, "run");
uuid_id!(ChannelId, "chn");
uuid_id!(RuleId, "rul");
uuid_id!(DeliveryId, "dlv");
uuid_id!(ExceptionId, "exc");
uuid_id!(RolloutId, "rol");

/// Converts a time to the stored representation: Unix epoch milliseconds, UTC.
pub(crate) fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_slugs() {
        for ok in ["acme", "a", "acme-corp-2", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "1acme",
            "acme-",
            "ac me",
            "acme/x",
            "..",
            "acmé",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_ids_parse_back_and_sort_by_time() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert_eq!(JobId::parse(a.as_str()).unwrap(), a);
        assert!(a < b);
        assert!(JobId::parse("tok_0190a0a0a0a0a0a0a0a0a0a0a0a0a0a0").is_err());
        assert!(TokenId::parse("nope").is_err());
    }
}
