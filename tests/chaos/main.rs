//! The chaos run (issue 17): `stella serve` (API only), a `stella scheduler` and two
//! `stella worker`s, each worker in a network namespace of its own, on a PostgreSQL, a
//! Valkey and an S3 server of the run's own, with an SMTP sink and a webhook receiver. A
//! mixed load over 20 tenants (scans of real SBOMs, drift from an advisory import,
//! exports of evidence bundles and SARIF to S3, notifications by e-mail and webhook,
//! poison jobs) runs while a seeded schedule SIGKILLs a random Stella process every few
//! seconds, restarts Valkey, restarts PostgreSQL with `pg_ctl restart -m immediate`,
//! stops the S3 server for 10 s and cuts one worker off from everything for 20 s.
//!
//! Then it counts at the sinks, not in Stella's tables: one attestation object per scan,
//! each export's files in S3 once and equal to a calm run's, one delivery id per
//! (event, rule, channel) at the SMTP sink and at the webhook receiver, no dead letter
//! but the poison jobs, an empty outbox, and every API answer a 2xx, a documented 4xx or
//! a 503 that was retried.
//!
//! `STELLA_CHAOS_SEED` picks the fault times (default 1, what CI runs);
//! `STELLA_CHAOS_ROUNDS` the rounds of load, 30 s apart (default 4). `ops/chaos.sh` runs
//! the long form over several seeds. Needs root (namespaces) and `ops/services.sh up`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod infra;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use infra::{Net, ObjectServer, Postgres, Proc, Receiver, S3Server, SmtpSink, Valkey};

const ADMIN: &str = "chaos-admin-token-0123456789abcdef";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TENANTS: usize = 20;
/// The poison jobs: `noop`s that fail every attempt, so they end dead-lettered.
const POISON: usize = 2;
/// How long the long `noop` jobs run; worker A alone runs them (worker B does not take
/// the `diag` role).
const LONG_JOB_MS: u64 = 10_000;
/// The kinds the tenants' rule sends on, by e-mail and webhook.
const KINDS: [&str; 4] = [
    "scan.completed",
    "finding.new",
    "advisory.impact",
    "export.completed",
];

/// SplitMix64: the seed's whole story, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` seconds, to the millisecond.
    fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        let unit = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        Duration::from_secs_f64(lo + unit * (hi - lo))
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill(usize),
    RestartValkey,
    RestartPostgres,
    StopS3,
    Partition,
}

/// The seed's fault schedule: offsets from the start of the load.
fn schedule(seed: u64, span: Duration) -> Vec<(Duration, Fault)> {
    let mut rng = Rng(seed);
    let s = span.as_secs_f64();
    let mut faults = vec![
        (rng.secs(0.10 * s, 0.40 * s), Fault::StopS3),
        (rng.secs(0.15 * s, 0.50 * s), Fault::RestartValkey),
        (rng.secs(0.20 * s, 0.60 * s), Fault::RestartPostgres),
        (rng.secs(0.20 * s, 0.45 * s), Fault::Partition),
    ];
    let partition = faults[3].0;
    // A kill every 3-8 s; worker A (slot 2) is left alone around its partition, so that
    // what it does when cut off is its own doing.
    let mut at = rng.secs(2.0, 5.0);
    while at < span {
        let mut slot = rng.below(4);
        if slot == 2
            && at + Duration::from_secs(5) > partition
            && at < partition + PARTITION + Duration::from_secs(5)
        {
            slot = 3;
        }
        faults.push((at, Fault::Kill(slot)));
        at += rng.secs(3.0, 8.0);
    }
    faults.sort_by_key(|(at, _)| *at);
    faults
}

const PARTITION: Duration = Duration::from_secs(20);

/// One Stella process the fleet keeps running, like systemd's `Restart=always`.
struct Slot {
    name: &'static str,
    args: Vec<&'static str>,
    /// Settings of this process only.
    env: Vec<(&'static str, &'static str)>,
    namespace: Option<String>,
    proc: Option<Proc>,
    starts: u32,
    kills: u32,
    /// Exits the fleet did not cause, with the last log line.
    exits: Vec<String>,
    exited_at: Option<Instant>,
}

struct Fleet {
    dir: PathBuf,
    env: Vec<(String, String)>,
    slots: Mutex<Vec<Slot>>,
    stop: AtomicBool,
}

impl Fleet {
    fn log_path(&self, name: &str, n: u32) -> PathBuf {
        self.dir.join(format!("{name}-{n}.log"))
    }

    fn spawn(&self, slot: &mut Slot) {
        slot.starts += 1;
        let log = std::fs::File::create(self.log_path(slot.name, slot.starts)).unwrap();
        let stella = env!("CARGO_BIN_EXE_stella");
        let mut command = match &slot.namespace {
            Some(ns) => {
                // `ip netns exec` execs the program: the child's pid is stella's own.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, stella]);
                c
            }
            None => Command::new(stella),
        };
        let child = command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(slot.env.iter().copied())
            .current_dir(&self.dir)
            .args(&slot.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        slot.proc = Some(Proc(child));
        slot.exited_at = None;
    }

    fn start(&self) {
        let mut slots = self.slots.lock().unwrap();
        for slot in slots.iter_mut() {
            self.spawn(slot);
        }
    }

    /// SIGKILLs the process in `index`; the supervision loop starts a new one.
    fn kill(&self, index: usize) -> &'static str {
        let mut slots = self.slots.lock().unwrap();
        let slot = &mut slots[index];
        if let Some(proc) = slot.proc.as_mut() {
            let _ = proc.0.kill();
            let _ = proc.0.wait();
        }
        slot.kills += 1;
        slot.proc = None;
        slot.exited_at = Some(Instant::now());
        slot.name
    }

    /// Starts again, a second after its exit, every process that exited or was killed.
    fn supervise(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            {
                let mut slots = self.slots.lock().unwrap();
                for slot in slots.iter_mut() {
                    if let Some(proc) = slot.proc.as_mut() {
                        if let Ok(Some(status)) = proc.0.try_wait() {
                            let log =
                                std::fs::read_to_string(self.log_path(slot.name, slot.starts))
                                    .unwrap_or_default();
                            // The error's first 200 characters: enough to tell why.
                            let last: String =
                                log.lines().last().unwrap_or("").chars().take(200).collect();
                            slot.exits.push(format!("{status}: {last}"));
                            slot.proc = None;
                            slot.exited_at = Some(Instant::now());
                        }
                    }
                    if slot.proc.is_none()
                        && slot
                            .exited_at
                            .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
                    {
                        self.spawn(slot);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops supervising and kills every process (the run's end, or its failure).
    fn kill_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter_mut() {
            slot.proc = None;
        }
    }

    /// Every log of `name`, joined.
    fn logs_of(&self, name: &str) -> String {
        let starts = self
            .slots
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.name == name)
            .map_or(0, |s| s.starts);
        (1..=starts)
            .map(|n| std::fs::read_to_string(self.log_path(name, n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last lines of every process's last log, for a failure message.
    fn tails(&self) -> String {
        let slots = self.slots.lock().unwrap();
        let mut out = String::new();
        for slot in slots.iter() {
            let text =
                std::fs::read_to_string(self.log_path(slot.name, slot.starts)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!(
                "\n--- {} (start {}, exits {:?})\n",
                slot.name, slot.starts, slot.exits
            ));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// What must stop when the run ends however it ends (a failed count panics while
/// threads still hold the services): run on drop, in order.
struct Cleanup(Vec<Box<dyn FnOnce()>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for stop in self.0.drain(..) {
            stop();
        }
    }
}

/// What the load's API calls got back, by answer.
#[derive(Default)]
struct Answers {
    ok: AtomicU64,
    documented_4xx: AtomicU64,
    retried_503: AtomicU64,
    retried_unreachable: AtomicU64,
    /// Anything else: `METHOD path -> status: body`.
    bad: Mutex<Vec<String>>,
}

struct Api {
    base: String,
    http: reqwest::Client,
    answers: Answers,
}

impl Api {
    /// A call as the administrator for `tenant`, retried while the server is down or
    /// answers 503 (both happen while it is killed and restarted). `expected` lists the
    /// 4xx answers this call documents (a retried create finding what it made, say).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Body>,
        key: Option<&str>,
        expected: &[u16],
    ) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            assert!(
                Instant::now() < deadline,
                "{method} {path}: no answer for 10 minutes"
            );
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(ADMIN)
                .timeout(Duration::from_secs(120));
            if let Some(tenant) = tenant {
                request = request.header("x-stella-tenant", tenant);
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            request = match &body {
                Some(Body::Json(value)) => request.json(value),
                Some(Body::Bytes(bytes, content_type)) => request
                    .header("content-type", *content_type)
                    .body(bytes.clone()),
                None => request,
            };
            let response = match request.send().await {
                Ok(response) => response,
                Err(_) => {
                    self.answers
                        .retried_unreachable
                        .fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let Ok(text) = response.text().await else {
                // The server died mid-answer.
                self.answers
                    .retried_unreachable
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match status {
                200..=299 => {
                    self.answers.ok.fetch_add(1, Ordering::Relaxed);
                    return (status, value);
                }
                503 => {
                    self.answers.retried_503.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                s if expected.contains(&s) => {
                    self.answers.documented_4xx.fetch_add(1, Ordering::Relaxed);
                    return (status, value);
                }
                s => {
                    self.answers
                        .bad
                        .lock()
                        .unwrap()
                        .push(format!("{method} {path} -> {s}: {text}"));
                    if s < 500 {
                        return (status, value);
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    async fn get(&self, path: &str, tenant: &str) -> Value {
        self.call(reqwest::Method::GET, path, Some(tenant), None, None, &[])
            .await
            .1
    }
}

enum Body {
    Json(Value),
    Bytes(bytes::Bytes, &'static str),
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

fn tenant(i: usize) -> String {
    format!("t{i:02}")
}

/// The real SBOMs the tenants scan, as (target, file).
const SBOMS: [(&str, &str); 3] = [
    (
        "bridge",
        "sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json",
    ),
    (
        "bridge-next",
        "sboms/cyclonedx/proton-bridge_proton-bridge-v1.8.0.bom.json",
    ),
    (
        "vdm",
        "sboms/cyclonedx/cern-lhc-vdm-editor-e564943_bom.json",
    ),
];

fn services_or_skip() -> Option<(String, S3Server)> {
    let valkey = std::env::var("STELLA_TEST_VALKEY_SERVER").ok();
    let garage = S3Server::from_env();
    let required = std::env::var_os("STELLA_TEST_SERVICES").is_some();
    match (valkey, garage) {
        (Some(v), Some(g)) if Net::available() => Some((v, g)),
        _ if required => panic!(
            "the chaos run needs root (network namespaces), STELLA_TEST_VALKEY_SERVER and \
             STELLA_TEST_GARAGE_BIN or STELLA_TEST_RUSTFS_BIN (from ops/services.sh up)"
        ),
        _ => {
            eprintln!("skipped: the chaos run needs root and `eval \"$(ops/services.sh up)\"`");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_kills_restarts_outages_and_a_partition_every_effect_happens_once() {
    let Some((valkey_bin, garage_bin)) = services_or_skip() else {
        return;
    };
    let seed: u64 = std::env::var("STELLA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // Rounds of load, 30 s apart: each scans one SBOM in every tenant and exports it.
    let rounds: usize = std::env::var("STELLA_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .max(2);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    infra::open_for_postgres(dir.path());
    let net = Arc::new(Net::create(2));
    let host = net.host.clone();
    let subnet = format!("{}/24", host.rsplit_once('.').unwrap().0.to_owned() + ".0");
    let pg = Arc::new(Postgres::start(dir.path(), &host, &subnet));
    let valkey = Arc::new(Mutex::new(Valkey::start(&valkey_bin, dir.path(), &host)));
    let garage = Arc::new(Mutex::new(ObjectServer::start(
        &garage_bin,
        dir.path(),
        &host,
    )));
    let smtp = SmtpSink::start(dir.path(), &host);
    // The receiver refuses the first attempts (wire retries keep their id), then answers
    // each after 50 ms, so deliveries are in flight when a fault lands.
    let receiver = Receiver::start(
        dir.path(),
        &host,
        SECRET,
        &json!([{"status": 503, "times": 5}, {"sleep": 0.05, "times": 1_000_000}]),
    );
    let port = infra::free_port();
    let (valkey_url, s3) = (
        valkey.lock().unwrap().url(),
        garage.lock().unwrap().target(),
    );
    let env: Vec<(String, String)> = [
        (
            "STELLA_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("STELLA_LISTEN", format!("127.0.0.1:{port}")),
        ("STELLA_DATABASE_URL", pg.url()),
        ("STELLA_DATABASE_MAX_CONNECTIONS", "10".into()),
        ("STELLA_VALKEY_URL", valkey_url),
        ("STELLA_BOOTSTRAP_TOKEN", ADMIN.into()),
        ("STELLA_S3_ENDPOINT", s3.endpoint.clone()),
        ("STELLA_S3_BUCKET", s3.bucket.clone()),
        ("STELLA_S3_REGION", s3.region.clone()),
        ("STELLA_S3_ACCESS_KEY_ID", s3.access_key_id.clone()),
        (
            "STELLA_S3_SECRET_ACCESS_KEY",
            s3.secret_access_key.expose().to_owned(),
        ),
        ("STELLA_NOTIFY_SMTP_HOST", host.clone()),
        ("STELLA_NOTIFY_SMTP_PORT", smtp.port.to_string()),
        ("STELLA_OUTBOUND_ALLOW_HOSTS", host.clone()),
        ("STELLA_RUNTIME_IN_SERVE", "false".into()),
        ("STELLA_SCHEDULER_POLL_INTERVAL_MS", "500".into()),
        ("STELLA_SCHEDULER_LEASE_TTL_SECS", "3".into()),
        // Take over a dead worker's entries after 2 s; a worker cut off for longer than
        // its 8 s lease stops acting.
        ("STELLA_RUNTIME_MIN_IDLE_MS", "2000".into()),
        ("STELLA_RUNTIME_LEASE_SECS", "8".into()),
        // A process dies every few seconds here, and each death delivers what it held
        // once more: the production limit of 5 deliveries (meant for the rare crash that
        // a poison message causes) would dead-letter a healthy 10 s job that lived
        // through five of them. The poison jobs fail their attempts and end dead-lettered
        // by `max_attempts` all the same.
        ("STELLA_RUNTIME_MAX_DELIVERIES", "20".into()),
        ("STELLA_API_RATE_LIMIT_PER_SECOND", "0".into()),
        ("STELLA_API_MAX_EXPORT_RUNS_PER_TENANT", "0".into()),
        ("STELLA_LOG", "warn,stella_supervisor::runtime=info".into()),
        // For `ip netns exec` to be found.
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let slot = |name, args: Vec<&'static str>, namespace: Option<String>| Slot {
        name,
        env: if name == "serve" {
            // The API alone: the scheduler is the process of its own below.
            vec![("STELLA_SCHEDULER_ENABLED", "false")]
        } else {
            Vec::new()
        },
        args,
        namespace,
        proc: None,
        starts: 0,
        kills: 0,
        exits: Vec::new(),
        exited_at: None,
    };
    let fleet = Arc::new(Fleet {
        dir: dir.path().to_owned(),
        env,
        slots: Mutex::new(vec![
            slot("serve", vec!["serve"], None),
            slot("scheduler", vec!["scheduler"], None),
            slot(
                "worker-a",
                vec!["worker"],
                Some(net.namespace(0).to_owned()),
            ),
            // Every role but `diag`: the long `noop` jobs below run on worker A alone,
            // so A surely holds deliveries when it is cut off.
            slot(
                "worker-b",
                vec![
                    "worker",
                    "--roles",
                    "fetcher,analyzer,evaluator,sealer,notifier,exporter",
                ],
                Some(net.namespace(1).to_owned()),
            ),
        ]),
        stop: AtomicBool::new(false),
    });
    let mut cleanup = Cleanup(Vec::new());
    {
        let (fleet, valkey, garage, pg, net) = (
            fleet.clone(),
            valkey.clone(),
            garage.clone(),
            pg.clone(),
            net.clone(),
        );
        cleanup.0.push(Box::new(move || fleet.kill_all()));
        cleanup.0.push(Box::new(move || {
            valkey.lock().unwrap_or_else(|e| e.into_inner()).kill();
            garage.lock().unwrap_or_else(|e| e.into_inner()).stop();
            pg.stop();
            net.remove();
        }));
    }
    fleet.start();
    let supervisor = {
        let fleet = fleet.clone();
        std::thread::spawn(move || fleet.supervise())
    };
    let api = Arc::new(Api {
        base: format!("http://127.0.0.1:{port}/api/v1"),
        http: reqwest::Client::new(),
        answers: Answers::default(),
    });

    // Calm set-up: advisories of one ecosystem, the tenants, their channels and rule.
    let pypi = std::fs::read(data().join("advisories/PyPI-all.zip")).unwrap();
    api.call(
        reqwest::Method::POST,
        "/advisories/imports?source=osv:PyPI",
        None,
        Some(Body::Bytes(pypi.into(), "application/octet-stream")),
        None,
        &[],
    )
    .await;
    for i in 0..TENANTS {
        let t = tenant(i);
        api.call(
            reqwest::Method::POST,
            "/tenants",
            None,
            Some(Body::Json(json!({"id": t, "name": t}))),
            None,
            &[409],
        )
        .await;
        for body in [
            json!({"name": "mail", "config": {"type": "email", "to": [format!("{t}@chaos.example")]},
                   "throttle": {"max": 100000, "per_seconds": 60}}),
            json!({"name": "hook", "secret": SECRET,
                   "config": {"type": "webhook", "url": format!("http://{host}:{}/hook/{t}", receiver.port)},
                   "throttle": {"max": 100000, "per_seconds": 60}}),
            json!({"name": "all", "match": {"event_kinds": KINDS},
                   "actions": [{"channel": "mail"}, {"channel": "hook"}]}),
        ] {
            let path = if body.get("actions").is_some() {
                "/notify/rules"
            } else {
                "/notify/channels"
            };
            api.call(
                reqwest::Method::POST,
                path,
                Some(&t),
                Some(Body::Json(body)),
                None,
                &[409],
            )
            .await;
        }
    }
    println!("chaos seed {seed}: set up in {:?}", started.elapsed());

    // The faults, on their own thread, on the seed's schedule.
    let span = Duration::from_secs(30 * rounds as u64);
    let faults = schedule(seed, span);
    let load_done = Arc::new(AtomicBool::new(false));
    let fault_log = Arc::new(Mutex::new(Vec::<String>::new()));
    let injector = {
        let (fleet, net, pg, valkey, garage, log, load_done) = (
            fleet.clone(),
            net.clone(),
            pg.clone(),
            valkey.clone(),
            garage.clone(),
            fault_log.clone(),
            load_done.clone(),
        );
        let faults = faults.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let note = |what: String| {
                log.lock()
                    .unwrap()
                    .push(format!("{:>6.1}s {what}", t0.elapsed().as_secs_f64()));
            };
            let mut healing: Vec<(Instant, Box<dyn FnOnce() + Send>)> = Vec::new();
            for (at, fault) in faults {
                while t0.elapsed() < at {
                    let now = Instant::now();
                    let (due, rest): (Vec<_>, Vec<_>) =
                        healing.into_iter().partition(|(t, _)| *t <= now);
                    healing = rest;
                    for (_, heal) in due {
                        heal();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                match fault {
                    Fault::Kill(slot) => {
                        let name = fleet.kill(slot);
                        note(format!("SIGKILL {name}"));
                    }
                    Fault::RestartValkey => {
                        note("Valkey: SIGTERM".into());
                        valkey.lock().unwrap().restart(Duration::from_secs(1));
                        note("Valkey: started again".into());
                    }
                    Fault::RestartPostgres => {
                        note("PostgreSQL: pg_ctl restart -m immediate".into());
                        pg.restart_immediate();
                        note("PostgreSQL: started again".into());
                    }
                    Fault::StopS3 => {
                        note("S3: SIGTERM".into());
                        garage.lock().unwrap().stop();
                        note("S3: stopped".into());
                        let (garage, log) = (garage.clone(), log.clone());
                        healing.push((
                            Instant::now() + Duration::from_secs(10),
                            Box::new(move || {
                                garage.lock().unwrap().start_again();
                                log.lock().unwrap().push(format!(
                                    "{:>6.1}s S3: started again",
                                    t0.elapsed().as_secs_f64()
                                ));
                            }),
                        ));
                    }
                    Fault::Partition => {
                        note("worker-a: cut off".into());
                        net.link(0, false);
                        let (net, log) = (net.clone(), log.clone());
                        healing.push((
                            Instant::now() + PARTITION,
                            Box::new(move || {
                                net.link(0, true);
                                log.lock().unwrap().push(format!(
                                    "{:>6.1}s worker-a: joined again",
                                    t0.elapsed().as_secs_f64()
                                ));
                            }),
                        ));
                    }
                }
            }
            for (_, heal) in healing {
                heal();
            }
            // Keep killing while the load still runs, so its end is under fire too.
            let mut rng = Rng(seed ^ 0xC4A0_5EED);
            while !load_done.load(Ordering::Relaxed) {
                std::thread::sleep(rng.secs(3.0, 8.0));
                if load_done.load(Ordering::Relaxed) {
                    break;
                }
                let name = fleet.kill(rng.below(4));
                note(format!("SIGKILL {name}"));
            }
        })
    };

    // The load.
    let load_started = Instant::now();
    let mut poison = Vec::new();
    for i in 0..POISON {
        let (_, job) = api
            .call(
                reqwest::Method::POST,
                "/jobs",
                Some(&tenant(i)),
                Some(Body::Json(
                    json!({"kind": "noop", "params": {"fail_first": 100},
                                       "idempotency_key": format!("poison-{i}")}),
                )),
                None,
                &[],
            )
            .await;
        poison.push(job["id"].as_str().unwrap().to_owned());
    }
    let sboms: Vec<(&str, bytes::Bytes)> = SBOMS
        .iter()
        .map(|(target, file)| (*target, std::fs::read(data().join(file)).unwrap().into()))
        .collect();
    // Rounds spread over the fault schedule, so that every fault lands on work in
    // flight: each round scans one SBOM in every tenant, then exports those scans (an
    // evidence bundle and SARIF, to S3) without waiting for the exports. The drift's
    // advisory import follows the first round.
    let mut scans: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut attestations: BTreeMap<String, String> = BTreeMap::new(); // scan -> its attestation
    let mut exports: Vec<(String, String, String)> = Vec::new(); // (tenant, profile, id)
                                                                 // Long jobs all along the load, two every 5 s, each running 10 s, so that worker A
                                                                 // always holds some (a job longer than the gaps between kills would be delivered
                                                                 // too often and end dead-lettered, as it should).
    let long_jobs: Arc<Mutex<Vec<(String, String)>>> = Arc::default(); // (tenant, job)
    let long_stop = Arc::new(AtomicBool::new(false));
    let long_feeder = {
        let (api, long_jobs, long_stop) = (api.clone(), long_jobs.clone(), long_stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !long_stop.load(Ordering::Relaxed) {
                for _ in 0..2 {
                    let t = tenant(n % TENANTS);
                    let (_, job) = api
                        .call(
                            reqwest::Method::POST,
                            "/jobs",
                            Some(&t),
                            Some(Body::Json(json!({"kind": "noop",
                                "params": {"sleep_ms": LONG_JOB_MS},
                                "idempotency_key": format!("long-{n}")}))),
                            None,
                            &[],
                        )
                        .await;
                    long_jobs
                        .lock()
                        .unwrap()
                        .push((t, job["id"].as_str().unwrap().to_owned()));
                    n += 1;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    for round in 0..rounds {
        let due = span.mul_f64(round as f64 / rounds as f64);
        if let Some(wait) = due.checked_sub(load_started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let (target, sbom) = &sboms[round % sboms.len()];
        let submitted = futures::future::join_all((0..TENANTS).map(|i| {
            let (api, t, sbom) = (api.clone(), tenant(i), sbom.clone());
            let name = format!("{t}-{target}-{round}");
            async move {
                let (_, accepted) = api
                    .call(
                        reqwest::Method::POST,
                        &format!("/scans?name={name}&target={target}"),
                        Some(&t),
                        Some(Body::Bytes(sbom, "application/json")),
                        Some(&name),
                        &[],
                    )
                    .await;
                (t, accepted["job_id"].as_str().unwrap().to_owned())
            }
        }))
        .await;
        if round == 0 {
            let go = std::fs::read(data().join("advisories/Go-all.zip")).unwrap();
            api.call(
                reqwest::Method::POST,
                "/advisories/imports?source=osv:Go",
                None,
                Some(Body::Bytes(go.into(), "application/octet-stream")),
                None,
                &[],
            )
            .await;
        }
        for (t, id) in submitted {
            let scan = wait_for(&api, &format!("/scans/{id}"), &t, &fleet, |s| {
                match s["status"].as_str() {
                    Some("completed") => Some(true),
                    Some("failed" | "cancelled") => Some(false),
                    _ => None,
                }
            })
            .await;
            assert_eq!(scan["status"], "completed", "scan {id} of {t}: {scan}");
            attestations.insert(
                id.clone(),
                scan["attestation_sha256"].as_str().unwrap().to_owned(),
            );
            for kind in ["evidence", "sarif"] {
                let profile = format!("{kind}-{round}");
                api.call(
                    reqwest::Method::POST,
                    "/export-profiles",
                    Some(&t),
                    Some(Body::Json(json!({"name": profile, "kind": kind,
                        "selectors": {"scans": [id]},
                        "distribution": {"to": "objects", "prefix": kind}}))),
                    None,
                    &[409],
                )
                .await;
                let (_, accepted) = api
                    .call(
                        reqwest::Method::POST,
                        "/exports",
                        Some(&t),
                        Some(Body::Json(json!({"profile": profile, "revision": 1,
                            "as_of": "2026-06-01T00:00:00Z"}))),
                        Some(&format!("chaos-{profile}")),
                        &[],
                    )
                    .await;
                exports.push((
                    t.clone(),
                    profile,
                    accepted["export_id"].as_str().unwrap().to_owned(),
                ));
            }
            scans.entry(t).or_default().push(id);
        }
        println!(
            "round {round}: {} scans completed, {} exports started, {:?} into the load",
            attestations.len(),
            exports.len(),
            load_started.elapsed()
        );
    }
    let mut chaos_files = BTreeMap::new();
    for (t, _, id) in &exports {
        let export = wait_export(&api, t, id, &fleet).await;
        chaos_files.insert(id.clone(), files_of(&export));
    }
    println!(
        "{} exports completed {:?} into the load",
        exports.len(),
        load_started.elapsed()
    );
    long_stop.store(true, Ordering::Relaxed);
    long_feeder.await.unwrap();
    let long_jobs = long_jobs.lock().unwrap().clone();
    for (t, id) in &long_jobs {
        let job = wait_for(&api, &format!("/jobs/{id}"), t, &fleet, |j| {
            match j["state"].as_str() {
                Some("succeeded") => Some(true),
                Some("failed" | "cancelled") => Some(false),
                _ => None,
            }
        })
        .await;
        assert_eq!(job["state"], "succeeded", "long job {id} of {t}: {job}");
    }
    load_done.store(true, Ordering::Relaxed);
    injector.join().unwrap();
    let faults_seen = fault_log.lock().unwrap().clone();
    println!("faults:\n{}", faults_seen.join("\n"));

    // Calm from here: the same exports again, for the bytes to compare with.
    let mut calm_ids = Vec::new();
    for (t, profile, _) in &exports {
        let (_, accepted) = api
            .call(
                reqwest::Method::POST,
                "/exports",
                Some(t),
                Some(Body::Json(json!({"profile": profile, "revision": 1,
                    "as_of": "2026-06-01T00:00:00Z"}))),
                Some(&format!("calm-{profile}")),
                &[],
            )
            .await;
        calm_ids.push(accepted["export_id"].as_str().unwrap().to_owned());
    }
    let mut calm_files = BTreeMap::new();
    for ((t, _, id), calm) in exports.iter().zip(calm_ids) {
        let export = wait_export(&api, t, &calm, &fleet).await;
        calm_files.insert(id.clone(), (calm, files_of(&export)));
    }

    // Settle: every scan ended (the drift's re-scans too), every delivery delivered or
    // otherwise ended, and the outbox empty.
    let settle_deadline = Instant::now() + Duration::from_secs(600);
    let mut all_scans: BTreeMap<String, Vec<Value>>;
    loop {
        let mut open = 0;
        all_scans = BTreeMap::new();
        for i in 0..TENANTS {
            let t = tenant(i);
            let page = api.get("/notify/deliveries?limit=500", &t).await;
            open += page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| matches!(d["status"].as_str(), Some("pending" | "held")))
                .count();
            let listed = list_all(&api, "/scans", &t).await;
            open += listed
                .iter()
                .filter(|s| {
                    !matches!(
                        s["status"].as_str(),
                        Some("completed" | "failed" | "cancelled")
                    )
                })
                .count();
            all_scans.insert(t, listed);
        }
        let outbox = sql_count(&pg.url(), "SELECT COUNT(*) FROM outbox").await;
        if open == 0 && outbox == 0 {
            break;
        }
        assert!(
            Instant::now() < settle_deadline,
            "{open} deliveries or scans still open, {outbox} outbox rows, 10 minutes after \
             the load:{}",
            fleet.tails()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Late wire copies have landed by now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // --- Counting at the sinks.
    let objects = stella_store::object::S3Store::new(&garage.lock().unwrap().target());
    use stella_store::object::ObjectStore as _;
    // 1. One attestation object per scan, the drift's re-scans included: every completed
    //    scan's attestation is in the bucket, and every DSSE envelope in the bucket is
    //    some scan's (objects are named by their content, so two scans that sealed the
    //    same statement share one; a seal redone after a crash must not leave a second).
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new(); // digest -> scans
    for (t, listed) in &all_scans {
        for scan in listed {
            let id = scan["id"].as_str().unwrap();
            assert_eq!(scan["status"], "completed", "scan {id} of {t}: {scan}");
            let digest = scan["attestation_sha256"].as_str().unwrap().to_owned();
            digests.entry(digest).or_default().push(id.to_owned());
        }
    }
    for (id, sha) in &attestations {
        assert!(
            digests.get(sha).is_some_and(|ids| ids.contains(id)),
            "submitted scan {id} is listed with its attestation"
        );
    }
    let mut envelopes = BTreeSet::new();
    for info in objects.list("sha256/").await.unwrap() {
        let body = read_object(&objects, &info.key).await;
        // A DSSE envelope of a verdict statement (exports sign provenance statements).
        let Ok(envelope) = stella_domain::dsse::Envelope::from_json(&body) else {
            continue;
        };
        let Ok(payload) = envelope.payload_unverified() else {
            continue;
        };
        let Ok(statement) = serde_json::from_slice::<Value>(&payload) else {
            continue;
        };
        if statement["predicateType"] == stella_domain::scan::VERDICT_PREDICATE {
            envelopes.insert(info.key.as_str().rsplit('/').next().unwrap().to_owned());
        }
    }
    let named: BTreeSet<String> = digests.keys().cloned().collect();
    assert!(
        envelopes == named,
        "the attestation objects in S3 are exactly the scans' ({} scans): in S3 only {:?}, \
         named only {:?}",
        digests.values().map(Vec::len).sum::<usize>(),
        envelopes.difference(&named).collect::<Vec<_>>(),
        named.difference(&envelopes).collect::<Vec<_>>()
    );
    // 2. Each export's files in S3 once, equal to the calm run's bytes.
    for (t, profile, id) in &exports {
        let chaos = &chaos_files[id];
        let (calm_id, calm) = &calm_files[id];
        assert_eq!(
            chaos, calm,
            "export {id} of {t} ({profile}) vs calm {calm_id}"
        );
        // The profile `<kind>-<round>` distributes under the prefix `<kind>`.
        let kind = profile.split('-').next().unwrap();
        let prefix = format!("tenants/{t}/{kind}/{id}/");
        let stored = objects.list(&prefix).await.unwrap();
        let mut seen = BTreeMap::new();
        for info in &stored {
            let body = read_object(&objects, &info.key).await;
            let name = info.key.as_str().strip_prefix(&prefix).unwrap().to_owned();
            assert!(
                seen.insert(name.clone(), sha256_hex(&body)).is_none(),
                "{name} twice under export {id}"
            );
        }
        let expected: BTreeMap<String, String> = chaos.iter().cloned().collect();
        assert_eq!(seen, expected, "export {id} of {t} ({profile}) in S3");
    }
    // 3. Notifications: per tenant, the events its rule matches, from the API.
    let attempts = receiver.attempts();
    assert!(
        attempts.iter().all(|a| a["verified"] == true),
        "every webhook attempt signed and verified by standardwebhooks"
    );
    let mail = read_maildir(&smtp.maildir);
    let mut delivered_total = 0;
    for i in 0..TENANTS {
        let t = tenant(i);
        let mut expected_events = BTreeMap::new();
        for kind in KINDS {
            let n = events_of(&api, &t, kind).await;
            expected_events.insert(kind.to_owned(), n);
        }
        let total: usize = expected_events.values().sum();
        // Webhook: each event under exactly one webhook id, answered 200 at least once.
        let mut ids_by_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut kinds_at_sink: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut answered: BTreeSet<String> = BTreeSet::new();
        let mut scan_ids_at_sink = BTreeSet::new();
        let mut export_ids_at_sink = BTreeSet::new();
        for a in attempts
            .iter()
            .filter(|a| a["path"] == format!("/hook/{t}"))
        {
            let body: Value = serde_json::from_str(a["body"].as_str().unwrap()).unwrap();
            let event = body["id"].as_str().unwrap().to_owned();
            let id = a["webhook_id"].as_str().unwrap().to_owned();
            ids_by_event
                .entry(event.clone())
                .or_default()
                .insert(id.clone());
            let kind = body["kind"].as_str().unwrap_or_default().to_owned();
            kinds_at_sink.entry(kind.clone()).or_default().insert(event);
            if a["answer"] == 200 {
                answered.insert(id);
            }
            let data = &body["payload"];
            if kind == "scan.completed" {
                scan_ids_at_sink.insert(data["scan_id"].as_str().unwrap_or_default().to_owned());
            }
            if kind == "export.completed" {
                export_ids_at_sink
                    .insert(data["export_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        for (event, ids) in &ids_by_event {
            assert_eq!(ids.len(), 1, "{t}: event {event} under webhook ids {ids:?}");
        }
        assert_eq!(
            answered.len(),
            ids_by_event.len(),
            "{t}: every webhook delivery answered 200 once at least"
        );
        let by_kind: BTreeMap<String, usize> = kinds_at_sink
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .filter(|(_, n)| *n > 0)
            .collect();
        let expected_by_kind: BTreeMap<String, usize> = expected_events
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        assert_eq!(
            by_kind, expected_by_kind,
            "{t}: events at the webhook receiver"
        );
        let every_scan: BTreeSet<String> = all_scans[&t]
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            scans[&t].iter().all(|id| every_scan.contains(id)),
            "{t}: every submitted scan listed"
        );
        assert_eq!(
            scan_ids_at_sink, every_scan,
            "{t}: one scan.completed per scan"
        );
        let runs: BTreeSet<String> = exports
            .iter()
            .filter(|(et, ..)| *et == t)
            .flat_map(|(_, _, id)| [id.clone(), calm_files[id].0.clone()])
            .collect();
        assert_eq!(
            export_ids_at_sink, runs,
            "{t}: one export.completed per run"
        );
        // E-mail: one Message-ID per event at the sink.
        let to = format!("{t}@chaos.example");
        let ids: BTreeSet<&String> = mail
            .iter()
            .filter(|(_, rcpt)| rcpt.contains(&to))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            ids.len(),
            total,
            "{t}: one e-mail per event ({expected_events:?})"
        );
        delivered_total += total;
    }
    // 4. Nothing dead but the poison; nothing left to send.
    let mut dead = BTreeSet::new();
    for i in 0..TENANTS {
        let page = api.get("/dead-letters?limit=500", &tenant(i)).await;
        for d in page["items"].as_array().unwrap() {
            dead.insert(d["job_id"].as_str().unwrap_or("?").to_owned());
        }
    }
    let poisoned: BTreeSet<String> = poison.iter().cloned().collect();
    assert_eq!(
        dead, poisoned,
        "dead letters: the poison jobs and nothing else"
    );
    assert_eq!(sql_count(&pg.url(), "SELECT COUNT(*) FROM outbox").await, 0);
    // The long jobs' effects: one each (redelivered runs commit nothing more).
    let long_effects = sql_count(
        &pg.url(),
        "SELECT COUNT(*) FROM noop_effects WHERE job_id IN \
         (SELECT id FROM jobs WHERE kind = 'noop' AND params LIKE '%10000%')",
    )
    .await;
    assert_eq!(
        long_effects,
        long_jobs.len() as i64,
        "one effect per long job"
    );
    let long_runs = sql_count(
        &pg.url(),
        "SELECT CAST(COALESCE(SUM(runs), 0) AS BIGINT) FROM noop_executions WHERE job_id IN \
         (SELECT id FROM jobs WHERE kind = 'noop' AND params LIKE '%10000%')",
    )
    .await;
    // 5. Every answer the load got.
    let bad = api.answers.bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "answers outside the contract: {bad:#?}");
    // 6. The partitioned worker stopped acting once its lease was gone.
    let worker_a = fleet.logs_of("worker-a");
    assert!(
        worker_a.contains("stopping this runtime"),
        "worker A, cut off for {PARTITION:?} while holding deliveries, never stopped acting:{}",
        fleet.tails()
    );

    fleet.stop.store(true, Ordering::Relaxed);
    supervisor.join().unwrap();
    let slots = fleet.slots.lock().unwrap();
    let wire_attempts = attempts.len();
    println!(
        "chaos seed {seed}: {} long jobs ({long_runs} runs, one effect each), \
         {} scans, {} exports (+{} calm), {} notifications ×2 channels \
         ({wire_attempts} webhook attempts, {} mails), {} poison jobs dead-lettered; \
         API answers: {} 2xx, {} documented 4xx, {} 503 retried, {} unreachable retried; \
         kills {:?}, unplanned exits {:?}; {:?} in all",
        long_jobs.len(),
        attestations.len(),
        exports.len(),
        exports.len(),
        delivered_total,
        mail.len(),
        poison.len(),
        api.answers.ok.load(Ordering::Relaxed),
        api.answers.documented_4xx.load(Ordering::Relaxed),
        api.answers.retried_503.load(Ordering::Relaxed),
        api.answers.retried_unreachable.load(Ordering::Relaxed),
        slots.iter().map(|s| (s.name, s.kills)).collect::<Vec<_>>(),
        slots
            .iter()
            .map(|s| (s.name, s.exits.clone()))
            .collect::<Vec<_>>(),
        started.elapsed()
    );
}

/// Polls `path` until `done` says the resource ended (true: as hoped).
async fn wait_for(
    api: &Api,
    path: &str,
    tenant: &str,
    fleet: &Fleet,
    done: impl Fn(&Value) -> Option<bool>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let value = api.get(path, tenant).await;
        if done(&value).is_some() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{path} of {tenant} never ended: {value}{}",
            fleet.tails()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_export(api: &Api, tenant: &str, id: &str, fleet: &Fleet) -> Value {
    let export = wait_for(api, &format!("/exports/{id}"), tenant, fleet, |e| {
        match e["status"].as_str() {
            Some("completed") => Some(true),
            Some("failed" | "cancelled") => Some(false),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        export["status"], "completed",
        "export {id} of {tenant}: {export}"
    );
    export
}

fn files_of(export: &Value) -> Vec<(String, String)> {
    export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every item of a paged list.
async fn list_all(api: &Api, path: &str, tenant: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .get(&format!("{path}?limit=500&cursor={cursor}"), tenant)
            .await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return items,
        }
    }
}

/// How many events of `kind` the tenant's stream holds.
async fn events_of(api: &Api, tenant: &str, kind: &str) -> usize {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let page = api
            .get(
                &format!("/events?kind={kind}&limit=500&cursor={cursor}"),
                tenant,
            )
            .await;
        n += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return n,
        }
    }
}

async fn sql_count(url: &str, sql: &str) -> i64 {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::query_as::<_, (i64,)>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .0
}

async fn read_object(
    objects: &stella_store::object::S3Store,
    key: &stella_store::object::ObjectKey,
) -> Vec<u8> {
    use stella_store::object::ObjectStore as _;
    use tokio::io::AsyncReadExt as _;
    let mut reader = objects.get(key).await.unwrap();
    let mut body = Vec::new();
    reader.read_to_end(&mut body).await.unwrap();
    body
}

fn sha256_hex(bytes: &[u8]) -> String {
    stella_domain::canonical::sha256_hex(bytes)
}

/// (Message-ID, envelope recipients) of every message the sink stored.
fn read_maildir(maildir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(maildir.join("new")).unwrap().flatten() {
        let raw = std::fs::read(entry.path()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let header = |name: &str| {
            text.lines()
                .take_while(|l| !l.trim().is_empty())
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        out.push((header("Message-ID"), header("X-Stella-Envelope-To")));
    }
    out
}
