//! The `[s3]` section and the object store backend it selects: S3, or the folder under the
//! data dir.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Secret, Settings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Set to select S3; unset selects the folder `objects/` under the data dir.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Prefix of every object key, so several deployments can share one bucket.
    pub prefix: String,
    /// Objects larger than this are uploaded in parts of this size (S3 minimum: 5 MiB).
    pub part_size_bytes: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: "stella".to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: None,
            secret_access_key: None,
            prefix: String::new(),
            part_size_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Which object store backend the settings select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBackend {
    Folder { root: PathBuf },
    S3(S3Target),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub prefix: String,
    pub part_size_bytes: u64,
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn object_backend(&self) -> ObjectBackend {
        let s3 = &self.s3;
        match (&s3.endpoint, &s3.access_key_id, &s3.secret_access_key) {
            (Some(endpoint), Some(id), Some(secret)) => ObjectBackend::S3(S3Target {
                endpoint: endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                prefix: s3.prefix.clone(),
                part_size_bytes: s3.part_size_bytes,
            }),
            // `validate` guarantees the credentials are present whenever the endpoint is.
            _ => ObjectBackend::Folder {
                root: self.data_dir.join("objects"),
            },
        }
    }
}
