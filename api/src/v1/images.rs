//! Container images of the caller's tenant: upload an image archive (streamed; the SBOM
//! is made of it as it arrives), list and read them. A scan names an uploaded image with
//! `POST /scans?image=sha256:…`. The work is the scan kind's image intake
//! ([`stella_actors::scan::ImageIntake`]); this module adds what is HTTP's.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::scan::Chunk;
use stella_store::repo::ImageRecord;
use utoipa::{IntoParams, ToSchema};

use super::{BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::Context;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadImageQuery {
    /// The image's name (`registry/repo:tag`); default: the archive's own tag, else its
    /// digest.
    pub name: Option<String>,
}

/// An uploaded image.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    /// `sha256:` of the image manifest: what scans name it by.
    pub digest: String,
    pub name: String,
    /// `docker-archive` or `oci-archive`.
    pub format: String,
    /// The uploaded archive's own digest and size.
    pub archive_sha256: String,
    pub archive_size: u64,
    /// The SBOM made of it (CycloneDX 1.5), stored like an uploaded one.
    pub sbom_sha256: String,
    /// Layers, distribution, packages per type, and the files an analyzer could not read.
    #[schema(value_type = Object)]
    pub summary: Value,
    pub created_at: DateTime<Utc>,
}

impl From<ImageRecord> for ImageView {
    fn from(r: ImageRecord) -> Self {
        Self {
            digest: r.digest,
            name: r.name,
            format: r.format,
            archive_sha256: r.archive_sha256,
            archive_size: r.archive_size,
            sbom_sha256: r.sbom_sha256,
            summary: r.summary,
            created_at: r.created_at,
        }
    }
}

fn is_tar(req: &HttpRequest) -> bool {
    crate::body::media_type(req).is_some_and(|v| {
        v == "application/x-tar"
            || v == "application/octet-stream"
            || v == "application/vnd.oci.image.layout.v1+tar"
    })
}

/// Upload a container image archive (`docker save`, or an OCI archive) as the body,
/// streamed: Stella reads its layers as they arrive, makes its SBOM, stores the archive
/// and the SBOM content-addressed, and answers with the image's digest. A hostile or
/// malformed archive is refused with `422 invalid-image` naming the entry (and the cap it
/// exceeded), and nothing is stored.
#[utoipa::path(
    operation_id = "upload_image",
    tag = "scans",
    params(UploadImageQuery),
    request_body(content = Vec<u8>, description = "A `docker save` archive or an OCI image layout as a tar (also accepted as `application/x-tar`)", content_type = "application/octet-stream"),
    responses((status = 201, body = ImageView), Problems, BodyProblems,
        (status = 422, description = "Not an image archive, or a hostile one (`invalid-image`, naming the entry and the cap)", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = ["scans:write"]))
)]
#[post("/images")]
pub(crate) async fn upload(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<UploadImageQuery>,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    if !is_tar(&req) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "an image is sent as application/x-tar (or application/octet-stream)",
        ));
    }
    let max = ctx.settings.max_image_bytes;
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image-too-large",
            format!(
                "the image archive is larger than the limit of {max} bytes (api.max_image_bytes)"
            ),
        )
    };
    let idle = Duration::from_secs(ctx.settings.body_read_timeout_secs.max(1));
    if let Some(declared) = crate::body::declared_length(&req).filter(|n| *n > max) {
        // Slightly over the limit: read and drop the body first, so the client, still
        // sending, reads this answer rather than a reset connection. Far over: refused
        // at once.
        if declared <= max.saturating_mul(2) {
            drain(&mut body, declared, idle).await;
        }
        return Err(too_large());
    }
    let name = query.into_inner().name;
    if let Some(n) = &name {
        if n.trim().is_empty() || n.len() > 500 {
            return Err(Problem::bad_request("name must be 1-500 characters").at("name"));
        }
    }
    // Each upload holds a blocking thread while its body arrives: a bounded number at once.
    let Ok(_slot) = ctx.image_uploads.clone().try_acquire_owned() else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "{} image uploads are being read (api.max_concurrent_image_uploads); retry later",
                ctx.settings.max_concurrent_image_uploads
            ),
        ));
    };
    // Each chunk must arrive within the body timeout (`idle`): a large image may take
    // long in all, but a stalled client does not hold the upload open.
    let (tx, intake) = ctx.intake.image_upload(tenant, name);
    let feed = async move {
        let mut received = 0u64;
        let mut refused = false;
        // Every way the body can end is told to the reader: only `End` is a whole upload.
        let fail = |kind, text: String| Chunk::Failed(std::io::Error::new(kind, text));
        loop {
            let chunk = match tokio::time::timeout(idle, body.next()).await {
                Err(_) => {
                    let _ = tx
                        .send(fail(
                            std::io::ErrorKind::TimedOut,
                            "the upload stalled".into(),
                        ))
                        .await;
                    return Err(Problem::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body-timeout",
                        format!("no part of the image arrived for {} s", idle.as_secs()),
                    ));
                }
                Ok(None) => {
                    let _ = tx.send(Chunk::End).await;
                    return Ok(());
                }
                Ok(Some(Err(err))) => {
                    let text = format!("reading the upload: {err}");
                    let _ = tx
                        .send(fail(std::io::ErrorKind::UnexpectedEof, text.clone()))
                        .await;
                    return Err(Problem::bad_request(text));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            received += chunk.len() as u64;
            if received > max {
                let _ = tx
                    .send(fail(
                        std::io::ErrorKind::FileTooLarge,
                        "the image is over api.max_image_bytes".into(),
                    ))
                    .await;
                // As for a declared length: let a client slightly over read the answer.
                drain(&mut body, max, idle).await;
                return Err(too_large());
            }
            // Once the reader has stopped (it refused the archive), the rest of the body
            // is read and dropped, so the client gets to read the answer that says why.
            if !refused && tx.send(Chunk::Data(chunk)).await.is_err() {
                refused = true;
            }
        }
    };
    let (fed, stored) = futures::join!(feed, intake.run());
    fed?;
    let stored = stored.map_err(super::scans::intake_problem)?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/images/{}", stored.record.digest),
        ))
        .json(ImageView::from(stored.record)))
}

/// The tenant's uploaded images, newest first, a page at a time.
#[utoipa::path(
    operation_id = "list_images",
    tag = "scans",
    params(PageQuery),
    responses((status = 200, body = Page<ImageView>), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/images")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<ImageView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .images()
        .list(query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, ImageView::from)))
}

/// One uploaded image by digest (`sha256:<hex>`).
#[utoipa::path(
    operation_id = "get_image",
    tag = "scans",
    params(("digest" = String, Path, description = "The image digest, `sha256:<hex>`")),
    responses((status = 200, body = ImageView), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/images/{digest}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    digest: web::Path<String>,
) -> ApiResult<web::Json<ImageView>> {
    let tenant = caller.tenant()?;
    // A path that names no image is a missing resource, like an unknown digest.
    let digest = image_digest(&digest)
        .map_err(|_| Problem::not_found(format!("image {digest} not found")))?;
    let image = ctx.store.tenant(tenant).images().get(&digest).await?;
    Ok(web::Json(image.into()))
}

/// `sha256:<64 hex>` (the prefix may be left out), lower-cased.
pub(crate) fn image_digest(raw: &str) -> ApiResult<String> {
    let hex = raw
        .strip_prefix("sha256:")
        .unwrap_or(raw)
        .to_ascii_lowercase();
    stella_store::object::Sha256Digest::parse(&hex).map_err(|_| {
        Problem::bad_request(format!(
            "{raw:?} is not an image digest (sha256:<64 hex digits>)"
        ))
        .at("image")
    })?;
    Ok(format!("sha256:{hex}"))
}

/// Reads and drops up to `limit` more bytes of `body` (each chunk within `idle`), so a
/// client still sending reads the answer instead of a connection reset under it.
async fn drain(body: &mut web::Payload, limit: u64, idle: Duration) {
    let mut read = 0u64;
    while read <= limit {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len() as u64,
            _ => return,
        }
    }
}
