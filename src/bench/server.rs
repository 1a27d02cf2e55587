//! A whole Stella for the end-to-end benchmarks (`bench scan`, `bench export`): an
//! `Application` on the configured backends (the embedded default: a fresh data folder,
//! nothing of the user's touched), an administrator token of its own, a fresh tenant and
//! the advisory collections imported, driven over HTTP as a user would.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use serde_json::Value;
use stella_config::Settings;

use crate::Application;

pub(super) struct BenchServer {
    pub(super) base: String,
    pub(super) admin: String,
    pub(super) tenant: String,
    /// The store's backend (`sqlite`, `postgres`).
    pub(super) store: String,
    pub(super) http: reqwest::Client,
    /// The running Stella's store, for benchmarks that feed it directly.
    pub(super) db: stella_store::Store,
    handle: actix_web::dev::ServerHandle,
    /// The application's run (server, then scheduler and runtime shutdown), awaited by
    /// `stop` so nothing is left running when the benchmark's runtime ends.
    running: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    data: tempfile::TempDir,
}

impl BenchServer {
    /// Starts Stella and imports `advisories`. Must run inside an actix system.
    pub(super) async fn start(
        mut settings: Settings,
        advisories: &[PathBuf],
        name: &str,
    ) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        settings.data_dir = data.path().to_path_buf();
        settings.listen = "127.0.0.1:0".parse()?;
        settings.api.rate_limit_per_second = 0;
        settings.api.max_export_runs_per_tenant = 0;
        // Set, so a fresh database does not generate (and print) an administrator token
        // into the report's stdout; the benchmark makes its own below.
        settings.bootstrap_token = Some(stella_config::Secret::new(format!(
            "bench-bootstrap-{}",
            uuid_like()
        )));
        let app = Application::build(settings).await?;
        let store = app.context().store.backend().to_string();
        let handle_store = app.context().store.clone();
        let (_, admin) = app
            .context()
            .store
            .tokens()
            .create(
                &stella_store::repo::NewToken {
                    tenant: None,
                    name: name.into(),
                    scopes: vec!["admin".into()],
                    expires_at: Some(Utc::now() + chrono::Duration::hours(6)),
                },
                Utc::now(),
            )
            .await?;
        let base = format!("http://{}/api/v1", app.addr());
        let handle = app.handle();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        let server = Self {
            base,
            admin,
            tenant: format!("bench-{}", uuid_like()),
            store,
            http: reqwest::Client::new(),
            db: handle_store,
            handle,
            running,
            data,
        };
        server
            .admin(
                server
                    .http
                    .post(format!("{}/tenants", server.base))
                    .json(&serde_json::json!({"id": server.tenant, "name": "bench"})),
            )
            .await?;
        for path in advisories {
            let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let source = format!(
                "osv:{}",
                path.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            );
            server
                .admin(
                    server
                        .http
                        .post(format!("{}/advisories/imports", server.base))
                        .query(&[("source", source)])
                        .header("content-type", "application/octet-stream")
                        .body(bytes),
                )
                .await?;
        }
        Ok(server)
    }

    /// Sends a request as the administrator acting on the tenant; its JSON body, or an
    /// error with the status and body.
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        self.send_to(&self.tenant, request).await
    }

    /// Sends a request as the administrator acting on `tenant`.
    pub(super) async fn send_to(
        &self,
        tenant: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        self.admin(request.header("X-Stella-Tenant", tenant)).await
    }

    /// Sends a request as the administrator (no tenant named).
    pub(super) async fn admin(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.admin).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(anyhow::anyhow!("{status}: {body}"))
        }
    }

    /// Scans an SBOM and waits for it: the time from submission to `completed`, and the
    /// scan as `GET /scans/{id}` shows it.
    pub(super) async fn scan(&self, sbom: &[u8]) -> anyhow::Result<(Duration, Value)> {
        let started = Instant::now();
        let accepted = self
            .send(
                self.http
                    .post(format!("{}/scans", self.base))
                    .header("content-type", "application/json")
                    .body(sbom.to_vec()),
            )
            .await?;
        let id = accepted["job_id"].as_str().unwrap_or_default().to_owned();
        let scan = self
            .wait(
                &format!("scans/{id}"),
                "completed",
                Duration::from_secs(600),
            )
            .await?;
        Ok((started.elapsed(), scan))
    }

    /// The data folder this Stella runs on (a fresh one), for workers started beside it.
    pub(super) fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Polls `GET {path}` until its `status` is `done` (an error if it ends otherwise).
    pub(super) async fn wait(
        &self,
        path: &str,
        done: &str,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let value = self
                .send(self.http.get(format!("{}/{path}", self.base)))
                .await?;
            match value["status"].as_str() {
                Some(status) if status == done => return Ok(value),
                Some("failed" | "cancelled") => {
                    return Err(anyhow::anyhow!("{path} ended: {value}"))
                }
                _ if started.elapsed() > limit => {
                    return Err(anyhow::anyhow!(
                        "{path} did not finish in {} s",
                        limit.as_secs()
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    /// Stops the server and waits for the application to shut its scheduler and runtime
    /// down (a pool connection dropped after the benchmark's runtime ended would panic).
    pub(super) async fn stop(self) {
        self.handle.stop(true).await;
        if let Err(err) = self.running.await {
            tracing::warn!(error = %err, "the benchmarked application did not stop cleanly");
        }
    }
}

pub(super) fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
