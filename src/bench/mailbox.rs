//! `stella bench mailbox`: messages sent → received by the real runtime → a no-op
//! handler → acknowledged, against a baseline measured in the same run on the same
//! backend: the raw ceiling of that backend (a plain XADD + XREADGROUP + XACK loop on
//! Valkey; plain INSERT / claiming UPDATE / DELETE on the embedded store) with the same
//! batch size. The ratio is what the runtime keeps of the raw ceiling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use deadpool_redis::redis;
use serde::Serialize;
use serde_json::json;
use stella_config::MailboxBackend;
use stella_store::mailbox::{
    ConsumerName, EmbeddedMailbox, Envelope, Mailbox, MailboxConfig, Role, ValkeyMailbox,
};
use stella_store::{TenantId, Valkey};
use stella_supervisor::{MessageHandler, Runtime, RuntimeConfig, RuntimeMetrics, StepError};

use super::{round, run_id};
use crate::Services;

/// The mailbox backend `stella bench mailbox --backend` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Valkey,
    Embedded,
}

#[derive(Debug, Clone, Serialize)]
pub struct MailboxReport {
    pub backend: &'static str,
    pub messages: u64,
    pub tenants: u32,
    pub batch_size: u32,
    pub concurrency: u32,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    pub baseline_seconds: f64,
    pub baseline_msgs_per_sec: f64,
    pub ratio: f64,
}

const KIND: &str = "bench.noop";

#[derive(Debug, Default)]
struct Count(AtomicU64);

#[async_trait]
impl MessageHandler for Count {
    async fn handle(&self, _: &Envelope) -> Result<(), StepError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub async fn run(
    services: &Services,
    backend: BenchBackend,
    messages: u64,
    tenants: u32,
) -> anyhow::Result<MailboxReport> {
    let settings = &services.settings;
    let id = run_id();
    let role = Role::parse(&format!("bench-{id}"))?;
    let config = MailboxConfig::default();
    let (mailbox, valkey): (Arc<dyn Mailbox>, Option<(Valkey, String)>) = match backend {
        BenchBackend::Embedded => (
            Arc::new(EmbeddedMailbox::new(services.store.clone(), config)),
            None,
        ),
        BenchBackend::Valkey => {
            let MailboxBackend::Valkey { url, cluster } = settings.mailbox_backend() else {
                return Err(anyhow::anyhow!(
                    "--backend valkey needs valkey.url (STELLA_VALKEY_URL)"
                ));
            };
            let valkey = Valkey::new(&url, settings.valkey.pool_size, cluster)?;
            let prefix = format!("{}-bench-{id}", settings.valkey.key_prefix);
            (
                Arc::new(ValkeyMailbox::with_replicas(
                    valkey.clone(),
                    &prefix,
                    config,
                    settings.valkey.wait_replicas,
                )),
                Some((valkey, prefix)),
            )
        }
    };
    let tenant_ids: Vec<TenantId> = (0..tenants.max(1))
        .map(|i| TenantId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;

    // The runtime path.
    let counter = Arc::new(Count::default());
    let mut registry = stella_actors::diagnostics();
    registry.register_message(KIND, counter.clone());
    let runtime = Runtime::start(RuntimeConfig {
        store: services.store.clone(),
        mailbox: mailbox.clone(),
        settings: settings.runtime.clone(),
        roles: vec![role.clone()],
        registry,
        metrics: RuntimeMetrics::new(&prometheus::Registry::new())?,
        consumer: ConsumerName::generate(),
    })
    .await?;
    let started = Instant::now();
    let now = Utc::now();
    let mut sent = 0u64;
    while sent < messages {
        let chunk: Vec<Envelope> = (sent..(sent + 512).min(messages))
            .map(|i| {
                Envelope::new(
                    tenant_ids[(i % tenant_ids.len() as u64) as usize].clone(),
                    role.clone(),
                    KIND,
                    json!({ "n": i }),
                    format!("{id}-{i}"),
                    now,
                )
            })
            .collect();
        sent += chunk.len() as u64;
        mailbox.send(&chunk, now).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while counter.0.load(Ordering::Relaxed) < messages {
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "the runtime did not handle every message within 600 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Handled is not done: done is acknowledged.
    loop {
        let stats = mailbox.stats(&role, Utc::now()).await?;
        if stats.pending == 0 && stats.ready == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    runtime.shutdown(Duration::from_secs(5)).await;

    let batch = settings.runtime.batch_size as usize;
    let baseline_seconds = match &valkey {
        Some((valkey, prefix)) => raw_valkey(valkey, prefix, messages, batch).await?,
        None => raw_sql(services, &role, messages, batch).await?,
    };
    if let Some((valkey, prefix)) = &valkey {
        cleanup(valkey, prefix).await;
    }
    let msgs_per_sec = messages as f64 / seconds;
    let baseline_msgs_per_sec = messages as f64 / baseline_seconds;
    Ok(MailboxReport {
        backend: match backend {
            BenchBackend::Valkey => "valkey",
            BenchBackend::Embedded => "embedded",
        },
        messages,
        tenants: tenants.max(1),
        batch_size: settings.runtime.batch_size,
        concurrency: settings.runtime.concurrency,
        seconds: round(seconds),
        msgs_per_sec: msgs_per_sec.round(),
        baseline_seconds: round(baseline_seconds),
        baseline_msgs_per_sec: baseline_msgs_per_sec.round(),
        ratio: round(msgs_per_sec / baseline_msgs_per_sec),
    })
}

/// The raw ceilings alone, measured the way `bench mailbox` and `bench jobs` measure them.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub store: String,
    pub messages: u64,
    pub batch_size: u32,
    /// The raw `XADD` / `XREADGROUP` / `XACK` loop; `None` without Valkey.
    pub raw_valkey_msgs_per_sec: Option<f64>,
    /// Single-row commits, as many in parallel as the connection pool.
    pub raw_commits_per_sec: f64,
    pub commit_parallelism: u32,
}

pub async fn baseline(services: &Services, messages: u64) -> anyhow::Result<BaselineReport> {
    let settings = &services.settings;
    let id = run_id();
    let batch = settings.runtime.batch_size as usize;
    let raw_valkey_msgs_per_sec = match settings.mailbox_backend() {
        MailboxBackend::Valkey { url, cluster } => {
            let valkey = Valkey::new(&url, settings.valkey.pool_size, cluster)?;
            let prefix = format!("{}-bench-{id}", settings.valkey.key_prefix);
            let seconds = raw_valkey(&valkey, &prefix, messages, batch).await;
            cleanup(&valkey, &prefix).await;
            Some((messages as f64 / seconds?).round())
        }
        MailboxBackend::Embedded => None,
    };
    let parallel = settings.database.max_connections;
    let raw = stella_store::diag::bench::RawSql::new(&services.store, &format!("baseline-{id}"));
    let started = Instant::now();
    raw.commits(messages, parallel as usize).await?;
    Ok(BaselineReport {
        store: services.store.backend().id().to_owned(),
        messages,
        batch_size: settings.runtime.batch_size,
        raw_valkey_msgs_per_sec,
        raw_commits_per_sec: (messages as f64 / started.elapsed().as_secs_f64()).round(),
        commit_parallelism: parallel,
    })
}

/// The raw Valkey ceiling: one producer connection pipelining XADD, one consumer
/// connection doing XREADGROUP COUNT `batch` + XACK, payloads of an envelope's size.
async fn raw_valkey(
    valkey: &Valkey,
    prefix: &str,
    messages: u64,
    batch: usize,
) -> anyhow::Result<f64> {
    let key = format!("{prefix}:raw");
    let mut setup = valkey.conn().await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut setup)
        .await?;
    let payload = "x".repeat(320);
    let started = Instant::now();
    let producer = {
        let valkey = valkey.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut conn = valkey.conn().await?;
            let mut sent = 0u64;
            while sent < messages {
                let mut pipe = redis::pipe();
                let n = (messages - sent).min(batch as u64);
                for _ in 0..n {
                    pipe.cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("e")
                        .arg(&payload)
                        .ignore();
                }
                let _: () = pipe.query_async(&mut conn).await?;
                sent += n;
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let mut conn = valkey.conn().await?;
    let mut acked = 0u64;
    while acked < messages {
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(batch)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = reply
            .map(|r| {
                r.keys
                    .into_iter()
                    .flat_map(|k| k.ids)
                    .map(|e| e.id)
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            tokio::task::yield_now().await;
            continue;
        }
        let _: i64 = redis::cmd("XACK")
            .arg(&key)
            .arg("g")
            .arg(&ids)
            .query_async(&mut conn)
            .await?;
        acked += ids.len() as u64;
    }
    producer.await??;
    Ok(started.elapsed().as_secs_f64())
}

/// The raw SQL ceiling on the same store: batched INSERTs, a claiming UPDATE of a batch
/// and a DELETE of it, without the mailbox's fairness, dedupe or envelopes.
async fn raw_sql(
    services: &Services,
    role: &Role,
    messages: u64,
    batch: usize,
) -> anyhow::Result<f64> {
    let bench = stella_store::diag::bench::RawSql::new(&services.store, role.as_str());
    let started = Instant::now();
    bench.run(messages, batch).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn cleanup(valkey: &Valkey, prefix: &str) {
    let Ok(mut conn) = valkey.conn().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
    }
}
