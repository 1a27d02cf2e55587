//! `stella bench notify`: webhook deliveries end to end (event in the store → the
//! scheduler's dispatch → a `notify` job → route → send → receipt) to a receiver in this
//! process, against a raw POST loop through the same guarded client (`Outbound::post`),
//! with the runtime's concurrency and bodies of the same size, to the same receiver.
//! Rounds alternate (Stella, raw, Stella, raw, ...) and each pair gives a ratio, since
//! the machine's speed drifts within a run. Then a burst over many tenants with tight
//! throttles: every event must reach the receiver exactly once, alone or in a digest.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::{json, Value};
use stella_actors::outbound::Outbound;
use stella_config::Settings;
use stella_domain::notify::event_id;
use stella_store::repo::NewEvent;
use stella_store::{Store, TenantId};

use super::server::BenchServer;
use super::{round, run_id};

/// The event kind the benchmark's rules match.
const KIND: &str = "scan.completed";
/// Appends in flight at once: the events arrive faster than they are delivered, as after
/// a busy scan queue, without one commit per event gating the feed.
const APPENDS_IN_FLIGHT: usize = 16;
/// How long the receiver may see nothing new before a phase is given up.
const STALL: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize)]
pub struct NotifyRound {
    pub round: u32,
    /// Seconds from the first event appended to the receiver holding every webhook-id.
    pub stella_seconds: f64,
    pub stella_per_sec: f64,
    /// The same number of POSTs of bodies of the same size through `Outbound::post`.
    pub raw_seconds: f64,
    pub raw_per_sec: f64,
    /// `stella_per_sec` over `raw_per_sec`.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    pub events: u64,
    pub tenants: u32,
    /// Each tenant's channel: at most `throttle_max` messages per `throttle_seconds`.
    pub throttle_max: u32,
    pub throttle_seconds: u32,
    /// Events the receiver got at least once, alone or in a digest.
    pub accounted: u64,
    /// Events sent in a message of their own.
    pub alone: u64,
    /// Events that arrived inside a digest.
    pub digested: u64,
    /// Digest messages received.
    pub digests: u64,
    /// Events received more than once (counted after a grace period past the last one).
    pub duplicates: u64,
    /// Requests the receiver answered.
    pub requests: u64,
    /// Seconds from the first event appended to the last one accounted for.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyReport {
    pub store: String,
    pub events: u64,
    /// `runtime.concurrency`: the raw loop's POSTs in flight.
    pub concurrency: u32,
    /// `runtime.tenant_concurrency`: the one tenant's jobs in flight (Stella's cap here).
    pub tenant_concurrency: u32,
    /// The mean webhook body Stella sent, and the raw loop's body size.
    pub body_bytes: u64,
    pub rounds: Vec<NotifyRound>,
    /// The median of the rounds' ratios.
    pub median_ratio: f64,
    pub burst: Option<BurstReport>,
}

/// What the receiver has seen since its last reset.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    bytes: u64,
    webhook_ids: HashSet<String>,
    /// With `parse` on: event id → times received.
    events: HashMap<String, u32>,
    alone: u64,
    digested: u64,
    digests: u64,
    /// When the last new webhook-id or event arrived.
    last_news: Option<Instant>,
}

struct Shared {
    tally: Mutex<Tally>,
    /// Read bodies as envelopes (the burst); off, only the `webhook-id` is counted.
    parse: AtomicBool,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A webhook receiver on 127.0.0.1 with its own worker threads: answers 200 to
/// everything and counts.
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let parsed = if shared.parse.load(Ordering::Relaxed) {
        serde_json::from_slice::<Value>(&body).ok()
    } else {
        None
    };
    let mut tally = shared.tally();
    tally.requests += 1;
    tally.bytes += body.len() as u64;
    let mut news = tally.webhook_ids.insert(id);
    if let Some(envelope) = parsed {
        let ids: Vec<&str> = if envelope["kind"] == "notify.digest" {
            tally.digests += 1;
            envelope["payload"]["events"]
                .as_array()
                .map(|events| events.iter().filter_map(|e| e["id"].as_str()).collect())
                .unwrap_or_default()
        } else {
            envelope["id"].as_str().into_iter().collect()
        };
        let digest = envelope["kind"] == "notify.digest";
        for id in ids {
            let seen = tally.events.entry(id.to_owned()).or_default();
            *seen += 1;
            if *seen == 1 {
                news = true;
                if digest {
                    tally.digested += 1;
                } else {
                    tally.alone += 1;
                }
            }
        }
    }
    if news {
        tally.last_news = Some(Instant::now());
    }
    HttpResponse::Ok().finish()
}

impl Receiver {
    fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            tally: Mutex::new(Tally::default()),
            parse: AtomicBool::new(false),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .default_service(web::to(receive))
        })
        .workers(2)
        .backlog(4096)
        .max_connection_rate(4096)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            addr,
            shared,
            handle,
        })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn reset(&self, parse: bool) {
        *self.shared.tally() = Tally::default();
        self.shared.parse.store(parse, Ordering::Relaxed);
    }

    /// Waits until `done` holds for the tally; an error when nothing new arrived for
    /// [`STALL`].
    async fn until(&self, what: &str, done: impl Fn(&Tally) -> bool) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            {
                let tally = self.shared.tally();
                if done(&tally) {
                    return Ok(());
                }
                let quiet = tally.last_news.unwrap_or(started).elapsed();
                if quiet > STALL {
                    return Err(anyhow::anyhow!(
                        "{what}: nothing new at the receiver for {} s ({} requests, {} \
                         webhook-ids, {} events)",
                        STALL.as_secs(),
                        tally.requests,
                        tally.webhook_ids.len(),
                        tally.events.len()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The benchmark's settings over the user's: the receiver on loopback allowed, and the
/// scheduler looking for new events every 50 ms (its default 500 ms would be most of a
/// small round's time).
fn bench_settings(mut settings: Settings) -> Settings {
    settings.outbound.allow_hosts = "127.0.0.1".into();
    settings.scheduler.poll_interval_ms = 50;
    settings
}

async fn create_tenant(server: &BenchServer, id: &str) -> anyhow::Result<()> {
    server
        .admin(
            server
                .http
                .post(format!("{}/tenants", server.base))
                .json(&json!({"id": id, "name": "bench"})),
        )
        .await?;
    Ok(())
}

/// One webhook channel `hook` with the given throttle and one rule sending `KIND` to it.
async fn channel_and_rule(
    server: &BenchServer,
    tenant: &str,
    url: &str,
    throttle: (u32, u32),
) -> anyhow::Result<()> {
    server
        .send_to(
            tenant,
            server
                .http
                .post(format!("{}/notify/channels", server.base))
                .json(&json!({
                    "name": "hook",
                    "config": {"type": "webhook", "url": url},
                    "throttle": {"max": throttle.0, "per_seconds": throttle.1},
                })),
        )
        .await?;
    server
        .send_to(
            tenant,
            server
                .http
                .post(format!("{}/notify/rules", server.base))
                .json(&json!({
                    "name": "bench",
                    "match": {"event_kinds": [KIND]},
                    "actions": [{"channel": "hook"}],
                })),
        )
        .await?;
    Ok(())
}

/// Appends `events` (tenant, dedupe key) to the store, [`APPENDS_IN_FLIGHT`] at a time.
async fn append(store: Store, events: Vec<(TenantId, String)>) -> anyhow::Result<()> {
    futures::stream::iter(events)
        .map(|(tenant, key)| {
            let store = store.clone();
            async move {
                let event = NewEvent {
                    kind: KIND.into(),
                    payload: json!({
                        "scan_id": key,
                        "target": "registry.example.com/shop/web",
                        "components": 412,
                        "findings": 17,
                        "verdict": "fail",
                    }),
                    dedupe_key: key,
                };
                store.append_event(Some(&tenant), &event, Utc::now()).await
            }
        })
        .buffer_unordered(APPENDS_IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(())
}

/// Appends `n` events for the tenant and waits for `n` distinct webhook-ids: the seconds
/// and the mean body size.
async fn stella_round(
    server: &BenchServer,
    receiver: &Receiver,
    tenant: &TenantId,
    prefix: &str,
    n: u64,
) -> anyhow::Result<(f64, u64)> {
    receiver.reset(false);
    let events = (0..n)
        .map(|i| (tenant.clone(), format!("{prefix}-{i}")))
        .collect();
    let started = Instant::now();
    let feed = actix_web::rt::spawn(append(server.db.clone(), events));
    receiver
        .until("stella", |t| t.webhook_ids.len() as u64 >= n)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    feed.await??;
    let tally = receiver.shared.tally();
    Ok((seconds, tally.bytes / tally.requests.max(1)))
}

/// `n` POSTs of `body_bytes` through the guarded client, `concurrency` in flight, each
/// with a webhook-id of its own; the seconds until the receiver has them all.
async fn raw_round(
    outbound: &Outbound,
    receiver: &Receiver,
    prefix: &str,
    n: u64,
    body_bytes: u64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    receiver.reset(false);
    let url = receiver.url();
    // A JSON string of the right length, so the body is what a receiver would parse.
    let filler = "x".repeat(usize::try_from(body_bytes.saturating_sub(8)).unwrap_or(0));
    let body = Bytes::from(format!("{{\"x\":\"{filler}\"}}"));
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let headers = vec![
                ("webhook-id".to_owned(), format!("{prefix}-{i}")),
                ("content-type".to_owned(), "application/json".to_owned()),
            ];
            let body = body.clone();
            let url = &url;
            async move {
                let answer = outbound
                    .post(url, &headers, body, Duration::from_secs(10))
                    .await?;
                if (200..300).contains(&answer.status) {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("the receiver answered {}", answer.status))
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    receiver
        .until("raw", |t| t.webhook_ids.len() as u64 >= n)
        .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// The burst's shape, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub events: u64,
    pub tenants: u32,
    pub throttle_max: u32,
    pub throttle_seconds: u32,
}

/// `burst.events` over `burst.tenants` fresh tenants, each with a throttled channel:
/// counted at the receiver by event id, in single messages and digest bodies.
async fn burst(
    server: &BenchServer,
    receiver: &Receiver,
    run: &str,
    burst: Burst,
) -> anyhow::Result<BurstReport> {
    let mut tenants = Vec::new();
    for k in 0..burst.tenants {
        let id = format!("burst-{run}-{k}");
        create_tenant(server, &id).await?;
        channel_and_rule(
            server,
            &id,
            &receiver.url(),
            (burst.throttle_max, burst.throttle_seconds),
        )
        .await?;
        tenants.push(TenantId::parse(&id)?);
    }
    let events: Vec<(TenantId, String)> = (0..burst.events)
        .map(|i| {
            let tenant =
                tenants[usize::try_from(i % u64::from(burst.tenants)).unwrap_or(0)].clone();
            (tenant, format!("burst-{run}-{i}"))
        })
        .collect();
    let expected: HashSet<String> = events.iter().map(|(_, key)| event_id(key)).collect();
    receiver.reset(true);
    let started = Instant::now();
    let feed = actix_web::rt::spawn(append(server.db.clone(), events));
    let count = |t: &Tally| {
        expected
            .iter()
            .filter(|id| t.events.contains_key(*id))
            .count() as u64
    };
    receiver
        .until("burst", |t| {
            t.events.len() as u64 >= burst.events && count(t) == burst.events
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    feed.await??;
    // A late second copy (a digest repeating a sent event, a retried send) would arrive
    // within a window or two: wait that long before counting duplicates.
    tokio::time::sleep(Duration::from_secs(
        u64::from(burst.throttle_seconds) * 2 + 1,
    ))
    .await;
    let tally = receiver.shared.tally();
    Ok(BurstReport {
        events: burst.events,
        tenants: burst.tenants,
        throttle_max: burst.throttle_max,
        throttle_seconds: burst.throttle_seconds,
        accounted: count(&tally),
        alone: tally.alone,
        digested: tally.digested,
        digests: tally.digests,
        duplicates: tally.events.values().filter(|&&n| n > 1).count() as u64,
        requests: tally.requests,
        seconds: round(seconds),
    })
}

/// Runs the rounds and the burst (none when `burst.events` is 0) on the settings'
/// backends, in a fresh data folder. Must run inside an actix system.
pub async fn run(
    settings: Settings,
    events: u64,
    rounds: u32,
    burst_shape: Burst,
) -> anyhow::Result<NotifyReport> {
    let settings = bench_settings(settings);
    let concurrency = settings.runtime.concurrency;
    let tenant_concurrency = settings.runtime.tenant_concurrency;
    let outbound = Outbound::new(&settings.outbound);
    let receiver = Receiver::start()?;
    let server = BenchServer::start(settings, &[], "bench notify").await?;
    let result = async {
        let run = run_id();
        let tenant = TenantId::parse(&server.tenant)?;
        channel_and_rule(&server, &server.tenant, &receiver.url(), (1_000_000, 60)).await?;
        // Warm-up (not timed): the scheduler's lease, the workers, the connections.
        let (_, mut body_bytes) =
            stella_round(&server, &receiver, &tenant, &format!("warm-{run}"), 50).await?;
        raw_round(
            &outbound,
            &receiver,
            &format!("warm-{run}"),
            50,
            body_bytes,
            concurrency as usize,
        )
        .await?;
        let mut results = Vec::new();
        for r in 1..=rounds {
            let prefix = format!("r{r}-{run}");
            let (stella_seconds, bytes) =
                stella_round(&server, &receiver, &tenant, &prefix, events).await?;
            body_bytes = bytes;
            let raw_seconds = raw_round(
                &outbound,
                &receiver,
                &prefix,
                events,
                body_bytes,
                concurrency as usize,
            )
            .await?;
            let stella_per_sec = events as f64 / stella_seconds;
            let raw_per_sec = events as f64 / raw_seconds;
            results.push(NotifyRound {
                round: r,
                stella_seconds: round(stella_seconds),
                stella_per_sec: stella_per_sec.round(),
                raw_seconds: round(raw_seconds),
                raw_per_sec: raw_per_sec.round(),
                ratio: round(stella_per_sec / raw_per_sec),
            });
        }
        let mut ratios: Vec<f64> = results.iter().map(|r| r.ratio).collect();
        ratios.sort_by(f64::total_cmp);
        let median_ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
        let burst = if burst_shape.events > 0 {
            Some(burst(&server, &receiver, &run, burst_shape).await?)
        } else {
            None
        };
        Ok(NotifyReport {
            store: server.store.clone(),
            events,
            concurrency,
            tenant_concurrency,
            body_bytes,
            rounds: results,
            median_ratio,
            burst,
        })
    }
    .await;
    server.stop().await;
    receiver.stop().await;
    result
}
