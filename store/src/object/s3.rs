use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use stella_config::S3Target;
use tokio::io::AsyncReadExt;

use super::{ObjectInfo, ObjectKey, ObjectReader, ObjectStore};
use crate::error::{Backend, Result, StoreError};

/// Objects in an S3 bucket (RustFS, Garage, AWS, any S3-compatible server): path-style
/// addressing, a custom endpoint, and an optional key prefix so deployments can share a
/// bucket. Files larger than one part are uploaded with multipart upload.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: u64,
    endpoint: String,
}

impl S3Store {
    pub fn new(target: &S3Target) -> Self {
        let credentials = Credentials::new(
            target.access_key_id.clone(),
            target.secret_access_key.expose().to_owned(),
            None,
            None,
            "stella-settings",
        );
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&target.endpoint)
            .region(Region::new(target.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true)
            .timeout_config(timeouts)
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .build();
        let prefix = match target.prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Self {
            client: Client::from_conf(config),
            bucket: target.bucket.clone(),
            prefix,
            part_size: target.part_size_bytes,
            endpoint: target.endpoint.clone(),
        }
    }

    fn full_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Creates the bucket if it does not exist (convenient for a fresh server; a bucket
    /// that exists but is not ours fails the readiness check with a clear error).
    pub async fn ensure_bucket(&self) -> Result<()> {
        match self.ping().await {
            Err(StoreError::NotFound(_)) => {
                match self
                    .client
                    .create_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(err) if err.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                    Err(err) => Err(self.sdk_err(err, "create bucket")),
                }
            }
            other => other,
        }
    }

    fn sdk_err<E>(&self, err: SdkError<E, HttpResponse>, what: &str) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = match &err {
            SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
            _ => None,
        };
        let code = err.code().map(str::to_owned);
        let detail = match (&code, err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            _ => match status {
                Some(status) => format!("HTTP {status}"),
                None => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
            },
        };
        let context = format!("{what} in bucket {} at {}", self.bucket, self.endpoint);
        match (&err, code.as_deref(), status) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _, _) => {
                StoreError::Unavailable {
                    backend: Backend::S3,
                    reason: format!("{context}: {detail}"),
                }
            }
            // The bucket is the object store's root: without it nothing is stored, which is
            // the store being unavailable, not the object being absent.
            (_, Some("NoSuchBucket"), _) => StoreError::Unavailable {
                backend: Backend::S3,
                reason: format!("{context}: the bucket does not exist ({detail})"),
            },
            (_, Some("NoSuchKey" | "NotFound"), _) | (_, _, Some(404)) => {
                StoreError::NotFound(format!("{context}: {detail}"))
            }
            (
                _,
                Some(
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "InvalidSignature"
                    | "Forbidden",
                ),
                _,
            )
            | (_, _, Some(401 | 403)) => StoreError::Backend {
                backend: Backend::S3,
                reason: format!(
                    "{context}: access denied ({detail}); check s3.access_key_id and s3.secret_access_key"
                ),
            },
            (_, _, Some(500..=599)) => StoreError::Unavailable {
                backend: Backend::S3,
                reason: format!("{context}: {detail}"),
            },
            _ => StoreError::Backend {
                backend: Backend::S3,
                reason: format!("{context}: {detail}"),
            },
        }
    }

    async fn multipart(&self, key: &ObjectKey, path: &Path) -> Result<()> {
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|err| self.sdk_err(err, "start multipart upload"))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StoreError::Backend {
                backend: Backend::S3,
                reason: "multipart upload started without an upload id".into(),
            })?
            .to_owned();
        let result = self.upload_parts(&full_key, &upload_id, path).await;
        match result {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full_key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|err| self.sdk_err(err, "complete multipart upload"))?;
                Ok(())
            }
            Err(err) => {
                // Best effort: an aborted upload frees the parts already stored.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full_key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(err)
            }
        }
    }

    async fn upload_parts(
        &self,
        full_key: &str,
        upload_id: &str,
        path: &Path,
    ) -> Result<Vec<CompletedPart>> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|err| StoreError::Invalid(format!("open {}: {err}", path.display())))?;
        let part_size = usize::try_from(self.part_size).unwrap_or(usize::MAX);
        let mut parts = Vec::new();
        for number in 1.. {
            let mut chunk = Vec::with_capacity(part_size);
            (&mut file)
                .take(self.part_size)
                .read_to_end(&mut chunk)
                .await
                .map_err(|err| StoreError::Invalid(format!("read {}: {err}", path.display())))?;
            if chunk.is_empty() && number > 1 {
                break;
            }
            let last = chunk.len() < part_size;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|err| self.sdk_err(err, "upload part"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .build(),
            );
            if last {
                break;
            }
        }
        Ok(parts)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn backend(&self) -> Backend {
        Backend::S3
    }

    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| self.sdk_err(err, &format!("put {key}")))?;
        Ok(())
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<()> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|err| StoreError::Invalid(format!("stat {}: {err}", path.display())))?
            .len();
        if size > self.part_size {
            return self.multipart(key, path).await;
        }
        // Read whole, as a part is: a file-backed body goes out in aws-chunked encoding,
        // whose chunk signatures Garage refuses past the first 64 KiB chunk ("Invalid
        // payload signature"); at most one part size is held, as a multipart upload does.
        let body = tokio::fs::read(path)
            .await
            .map_err(|err| StoreError::Invalid(format!("read {}: {err}", path.display())))?;
        self.put(key, Bytes::from(body)).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|err| self.sdk_err(err, &format!("get {key}")))?;
        Ok(Box::pin(object.body.into_async_read()))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(
                head.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Err(err) => match self.sdk_err(err, &format!("head {key}")) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|err| self.sdk_err(err, &format!("delete {key}")))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.sdk_err(err, &format!("list {prefix}")))?;
            for object in page.contents() {
                let Some(full) = object.key() else { continue };
                let Some(relative) = full.strip_prefix(&self.prefix) else {
                    continue;
                };
                if let Ok(key) = ObjectKey::parse(relative) {
                    out.push(ObjectInfo {
                        key,
                        size: object
                            .size()
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The bucket exists (`NotFound` otherwise, which `ensure_bucket` reads) and takes a
    /// write: a probe object is put and deleted, so read-only credentials, a full or
    /// read-only server fail readiness.
    async fn ping(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|err| self.sdk_err(err, "head bucket"))?;
        let key = ObjectKey::parse(&format!(".stella-probe/{}", uuid::Uuid::new_v4().simple()))?;
        self.put(&key, Bytes::from_static(b"ok")).await?;
        self.delete(&key).await
    }
}
