//! The object store's contract, run against the local folder and a real S3 server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stella_test_harness as common;

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use stella_store::object::{ObjectKey, ObjectStore, Objects, S3Store, Sha256Digest};
use stella_store::{StoreError, TenantId};
use tokio::io::AsyncReadExt;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod folder {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let objects = crate::common::folder();
                    super::$test(objects.store.clone()).await;
                    objects.finish().await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(objects) = crate::common::s3().await else { return };
                    super::$test(objects.store.clone()).await;
                    objects.finish().await;
                }
            )*
        }
    };
}

conformance!(
    put_get_head_delete_round_trip,
    missing_objects_are_not_found,
    overwrites_replace_the_whole_object,
    content_is_addressed_by_digest_and_stored_once,
    tampered_content_fails_verification,
    large_streams_round_trip_without_buffering,
    small_files_upload_in_one_request,
    files_below_the_part_size_go_up_whole,
    lists_are_sorted_and_scoped_to_their_prefix,
    ping_succeeds_on_a_usable_store,
);

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

async fn read_all(store: &dyn ObjectStore, k: &ObjectKey) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .get(k)
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

async fn put_get_head_delete_round_trip(store: Arc<dyn ObjectStore>) {
    let k = key("tenants/acme/sboms/app.json");
    store
        .put(&k, Bytes::from_static(b"{\"bomFormat\":\"CycloneDX\"}"))
        .await
        .unwrap();
    assert_eq!(store.head(&k).await.unwrap(), Some(25));
    assert_eq!(
        read_all(store.as_ref(), &k).await,
        b"{\"bomFormat\":\"CycloneDX\"}"
    );
    store.delete(&k).await.unwrap();
    assert_eq!(store.head(&k).await.unwrap(), None);
    store.delete(&k).await.unwrap();

    let empty = key("tenants/acme/empty");
    store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.head(&empty).await.unwrap(), Some(0));
    assert!(read_all(store.as_ref(), &empty).await.is_empty());
}

async fn missing_objects_are_not_found(store: Arc<dyn ObjectStore>) {
    let k = key("tenants/acme/nothing-here");
    let err = match store.get(&k).await {
        Ok(_) => panic!("got an object that was never put"),
        Err(err) => err,
    };
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.head(&k).await.unwrap(), None);
    // A "folder" is not an object.
    store
        .put(&key("tenants/acme/dir/file"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(store.head(&key("tenants/acme/dir")).await.unwrap(), None);
}

async fn overwrites_replace_the_whole_object(store: Arc<dyn ObjectStore>) {
    let k = key("tenants/acme/report.csv");
    store
        .put(&k, Bytes::from(vec![b'a'; 10_000]))
        .await
        .unwrap();
    store.put(&k, Bytes::from_static(b"short")).await.unwrap();
    assert_eq!(read_all(store.as_ref(), &k).await, b"short");
}

async fn content_is_addressed_by_digest_and_stored_once(store: Arc<dyn ObjectStore>) {
    let objects = Objects::new(store.clone());
    let body = Bytes::from_static(b"advisory GO-2024-0001");
    let first = objects.put_content(body.clone()).await.unwrap();
    assert_eq!(first.digest, Sha256Digest::of(&body));
    assert_eq!(first.size, body.len() as u64);
    let again = objects.put_content(body.clone()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(objects.read_content(&first.digest).await.unwrap(), body);
    let listed = store.list("sha256/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.as_str(), format!("sha256/{}", first.digest));

    let tenant = TenantId::parse("acme").unwrap();
    let written = objects
        .put_tenant(&tenant, "exports/run-1/export.json", body.clone())
        .await
        .unwrap();
    assert_eq!(written.as_str(), "tenants/acme/exports/run-1/export.json");
    assert_eq!(
        objects
            .read_tenant(&tenant, "exports/run-1/export.json")
            .await
            .unwrap(),
        body
    );
    assert!(matches!(
        objects.put_tenant(&tenant, "../globex/x", body).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn tampered_content_fails_verification(store: Arc<dyn ObjectStore>) {
    let objects = Objects::new(store.clone());
    let stored = objects
        .put_content(Bytes::from_static(b"the real evidence"))
        .await
        .unwrap();
    // Someone with bucket access rewrites the object behind Stella's back.
    store
        .put(
            &ObjectKey::content(&stored.digest),
            Bytes::from_static(b"forged evidence!!"),
        )
        .await
        .unwrap();
    let err = objects.read_content(&stored.digest).await.unwrap_err();
    let StoreError::Corrupt(text) = &err else {
        panic!("expected Corrupt, got {err}")
    };
    assert!(text.contains(&stored.digest.to_string()), "{text}");
    // Truncation is caught too.
    store
        .put(
            &ObjectKey::content(&stored.digest),
            Bytes::from_static(b"the real"),
        )
        .await
        .unwrap();
    assert!(matches!(
        objects.read_content(&stored.digest).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// A file below the part size goes up in one request, streamed from disk (the exporter
/// stores every file it writes this way). S3 servers other than AWS refuse the SDK's
/// default streamed upload (an `aws-chunked` body with a checksum trailer); this is the
/// case that caught it, on Garage.
async fn small_files_upload_in_one_request(store: Arc<dyn ObjectStore>) {
    let objects = Objects::new(store.clone());
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let stored = objects.put_content_file(file.path()).await.unwrap();
    assert_eq!(stored.digest, Sha256Digest(Sha256::digest(&body).into()));
    assert_eq!(stored.size, body.len() as u64);
    let read = objects.read_content(&stored.digest).await.unwrap();
    assert_eq!(read.as_ref(), &body[..]);
    // Copied to a second key, as distribution does.
    let copy = key("tenants/acme/reports/copy.bin");
    objects
        .copy_content_to(&stored.digest, stored.size, &copy)
        .await
        .unwrap();
    assert_eq!(read_all(store.as_ref(), &copy).await, body);
}

/// Files of many 64 KiB chunks yet below the part size (an export's bundle) take the
/// single-request path, streamed from disk; they round-trip like the small and the
/// multipart ones (Garage refused such bodies past their first chunk while the SDK sent
/// them `aws-chunked`).
async fn files_below_the_part_size_go_up_whole(store: Arc<dyn ObjectStore>) {
    let objects = Objects::new(store.clone());
    for size in [64 * 1024 + 1, 3 * 1024 * 1024 + 5] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &body).unwrap();
        let stored = objects.put_content_file(file.path()).await.unwrap();
        assert_eq!(stored.size, size as u64);
        assert_eq!(
            objects.read_content(&stored.digest).await.unwrap().as_ref(),
            &body[..]
        );
    }
}

/// 13 MiB: more than two S3 parts of 5 MiB, so S3 takes the multipart path.
async fn large_streams_round_trip_without_buffering(store: Arc<dyn ObjectStore>) {
    let objects = Objects::new(store.clone());
    let size = 13 * 1024 * 1024 + 17;
    let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let expected = Sha256Digest(Sha256::digest(&body).into());
    let stored = objects.put_content_stream(&body[..]).await.unwrap();
    assert_eq!(stored.digest, expected);
    assert_eq!(stored.size, size as u64);
    assert_eq!(
        store.head(&ObjectKey::content(&expected)).await.unwrap(),
        Some(size as u64)
    );

    let mut reader = objects.get_content(&expected).await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n;
    }
    assert_eq!(total, size);
    assert_eq!(Sha256Digest(hasher.finalize().into()), expected);
}

async fn lists_are_sorted_and_scoped_to_their_prefix(store: Arc<dyn ObjectStore>) {
    for k in [
        "tenants/acme/b.json",
        "tenants/acme/a/z.json",
        "tenants/acme/c.json",
        "tenants/acme-corp/a.json",
        "tenants/globex/a.json",
    ] {
        store
            .put(&key(k), Bytes::from(k.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let objects = Objects::new(store.clone());
    let acme = objects
        .list_tenant(&TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    let keys: Vec<_> = acme.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tenants/acme/a/z.json",
            "tenants/acme/b.json",
            "tenants/acme/c.json"
        ]
    );
    assert_eq!(acme[1].size, "tenants/acme/b.json".len() as u64);
    assert!(store.list("tenants/nobody/").await.unwrap().is_empty());
}

async fn ping_succeeds_on_a_usable_store(store: Arc<dyn ObjectStore>) {
    store.ping().await.unwrap();
}

#[tokio::test]
async fn s3_with_a_wrong_secret_names_the_credentials() {
    let Some(mut target) = common::s3_target() else {
        return;
    };
    target.secret_access_key = stella_config::Secret::new("definitely-not-the-secret");
    let err = S3Store::new(&target).ping().await.unwrap_err().to_string();
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("s3.secret_access_key"), "{err}");
    assert!(!err.contains("definitely-not-the-secret"), "{err}");
}

#[tokio::test]
async fn s3_that_is_not_listening_is_unavailable() {
    let Some(mut target) = common::s3_target() else {
        return;
    };
    target.endpoint = "http://127.0.0.1:9".into();
    let err = S3Store::new(&target).ping().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn folder_objects_and_their_folders_are_private() {
    let objects = common::folder();
    let root = objects.root.clone().unwrap();
    let store = Objects::new(objects.store.clone());
    let stored = store
        .put_content(Bytes::from_static(b"a tenant's sbom"))
        .await
        .unwrap();
    let spooled = store
        .put_content_stream(&b"a streamed document"[..])
        .await
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    store
        .put_tenant(&tenant, "reports/r.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    for dir in [
        root.clone(),
        root.join(".tmp"),
        root.join("sha256"),
        root.join("tenants/acme/reports"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        root.join(format!("sha256/{}", stored.digest)),
        root.join(format!("sha256/{}", spooled.digest)),
        root.join("tenants/acme/reports/r.json"),
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    objects.finish().await;
}

#[tokio::test]
async fn a_removed_folder_root_is_unavailable_not_a_missing_object() {
    let objects = common::folder();
    let root = objects.root.clone().unwrap();
    let store = objects.store.clone();
    store
        .put(&key("sha256/present"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    // Under an intact root, an absent object is absent.
    assert!(matches!(
        store.get(&key("sha256/absent")).await,
        Err(StoreError::NotFound(_))
    ));
    std::fs::remove_dir_all(&root).unwrap();
    for (what, result) in [
        ("get", store.get(&key("sha256/present")).await.map(|_| ())),
        ("head", store.head(&key("sha256/present")).await.map(|_| ())),
        (
            "put",
            store
                .put(&key("sha256/new"), Bytes::from_static(b"y"))
                .await,
        ),
        ("list", store.list("sha256/").await.map(|_| ())),
        ("ping", store.ping().await),
    ] {
        match result {
            Err(err @ StoreError::Unavailable { .. }) => {
                assert!(err.to_string().contains("removed"), "{what}: {err}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert!(!root.exists(), "a put must not re-create the root");
}
