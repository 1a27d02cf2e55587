//! Crash tests: `stella serve` and two `stella worker` processes share PostgreSQL and
//! Valkey while `stella diag noop` pushes jobs through; a worker is SIGKILLed (or Valkey
//! restarted) mid-run. No accepted job may be lost, and no effect may happen twice.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{AnyConnection, Connection};

/// Jobs per run; the figure. `STELLA_TEST_CRASH_JOBS` overrides it for quick
/// local runs.
fn job_count() -> u64 {
    std::env::var("STELLA_TEST_CRASH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stella"));
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Waits until the process logging to `log` runs its runtime (it takes work from
    /// then on), so a kill hits a process that holds deliveries however slow the start.
    fn wait_started(&self, log: &str) {
        let path = self.dir.path().join(log);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains("runtime started") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{log} never started its runtime: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of every process's log, for a failure message.
    pub(crate) fn logs(&self) -> String {
        let mut out = String::new();
        let mut paths: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!(
                "\n--- {} (last {} lines)\n",
                path.display(),
                tail.len()
            ));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Runs on a Valkey Cluster whose primaries have a replica each: sends wait for a
    /// replica to hold them, so a failover loses nothing sent.
    fn on_valkey_cluster(&mut self) {
        self.env
            .push(("STELLA_VALKEY_CLUSTER".into(), "true".into()));
        self.env
            .push(("STELLA_VALKEY_WAIT_REPLICAS".into(), "1".into()));
    }

    fn spawn(&self, args: &[&str], log: &str) -> Proc {
        let file = std::fs::File::create(self.dir.path().join(log)).unwrap();
        Proc(
            self.command(args)
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .unwrap(),
        )
    }
}

fn cluster(database_url: &str, valkey_url: &str, prefix: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "STELLA_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("STELLA_LISTEN", "127.0.0.1:0".to_string()),
        ("STELLA_DATABASE_URL", database_url.to_string()),
        // Two clusters of four processes share the test server's 100 connections.
        ("STELLA_DATABASE_MAX_CONNECTIONS", "6".to_string()),
        ("STELLA_VALKEY_URL", valkey_url.to_string()),
        ("STELLA_VALKEY_KEY_PREFIX", prefix.to_string()),
        ("STELLA_BOOTSTRAP_TOKEN", ADMIN.to_string()),
        // Take over a dead worker's entries after 2 s, not the production 30 s.
        ("STELLA_RUNTIME_MIN_IDLE_MS", "2000".to_string()),
        // Warnings, and the runtime's start (what `wait_started` looks for).
        (
            "STELLA_LOG",
            "warn,stella_supervisor::runtime=info".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Cluster { dir, env }
}

/// The administrator token the crash clusters start with.
const ADMIN: &str = "crash-test-admin-token-0123456789";

/// A cluster as the export and notify crash tests run it: `stella serve` (API only) on a
/// fixed port and two `stella worker`s, all started and listening, with the settings
/// `extra_env` adds (S3, the outbound allow-list, ...).
pub(crate) struct Served {
    pub(crate) cluster: Cluster,
    port: u16,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    /// Replaced when killed, like worker A.
    serve: std::cell::RefCell<Proc>,
    /// Replaced when killed (behind a cell, so a test can kill it while it holds other
    /// borrows of the cluster).
    worker_a: std::cell::RefCell<Proc>,
    _worker_b: Proc,
}

impl Served {
    async fn start(
        database_url: &str,
        valkey_url: &str,
        extra_env: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Served {
        Self::start_with(
            database_url,
            valkey_url,
            extra_env,
            [&["worker"], &["worker"]],
        )
        .await
    }

    /// The same, each worker started with its own arguments (`--roles ...`).
    pub(crate) async fn start_with(
        database_url: &str,
        valkey_url: &str,
        extra_env: impl IntoIterator<Item = (&'static str, String)>,
        workers: [&[&str]; 2],
    ) -> Served {
        let port = free_port();
        let prefix = format!("crash-{}", uuid::Uuid::new_v4().simple());
        let mut cluster = cluster(database_url, valkey_url, &prefix);
        cluster.env.retain(|(k, _)| k != "STELLA_LISTEN");
        cluster.env.extend(
            [
                ("STELLA_LISTEN", format!("127.0.0.1:{port}")),
                ("STELLA_RUNTIME_IN_SERVE", "false".into()),
                ("STELLA_API_RATE_LIMIT_PER_SECOND", "0".into()),
            ]
            .into_iter()
            .chain(extra_env)
            .map(|(k, v)| (k.to_owned(), v)),
        );
        let serve = cluster.spawn(&["serve"], "serve.log");
        let worker_a = cluster.spawn(workers[0], "worker-a.log");
        let worker_b = cluster.spawn(workers[1], "worker-b.log");
        for log in ["worker-a.log", "worker-b.log"] {
            cluster.wait_started(log);
        }
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while http.get(format!("{base}/keys")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "serve never listened: {}",
                std::fs::read_to_string(cluster.dir.path().join("serve.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Served {
            cluster,
            port,
            base,
            http,
            serve: std::cell::RefCell::new(serve),
            worker_a: std::cell::RefCell::new(worker_a),
            _worker_b: worker_b,
        }
    }

    /// An API call as the administrator for tenant `acme`: status, JSON body (`Null` if
    /// none) and text.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .header("x-stella-tenant", "acme");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            text,
        )
    }

    /// SIGKILLs `serve` (the API and the scheduler's leader) and starts its successor on
    /// the same port, logging to `log`; returns the dead one.
    async fn kill_serve(&self, log: &str) -> Proc {
        {
            let mut serve = self.serve.borrow_mut();
            serve.0.kill().unwrap();
            serve.0.wait().unwrap();
        }
        let next = self.cluster.spawn(&["serve"], log);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self
            .http
            .get(format!("{}/keys", self.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "serve never listened again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.serve.replace(next)
    }

    /// SIGKILLs worker A and starts its successor (logging to `log`); the dead one is
    /// returned so its log stays until the test ends.
    async fn kill_worker_a(&self, log: &str) -> Proc {
        {
            let mut worker_a = self.worker_a.borrow_mut();
            worker_a.0.kill().unwrap(); // SIGKILL: its deliveries stay pending on it
            worker_a.0.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = self.cluster.spawn(&["worker"], log);
        self.worker_a.replace(next)
    }
}

async fn effects_so_far(database_url: &str) -> i64 {
    let Ok(mut conn) = AnyConnection::connect(database_url).await else {
        return 0;
    };
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM noop_effects")
        .fetch_one(&mut conn)
        .await
        .map(|r| r.0)
        .unwrap_or(0)
}

async fn wait_for_effects(database_url: &str, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while effects_so_far(database_url).await < at_least {
        assert!(Instant::now() < deadline, "the run made no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for diag to finish (blocking this test's thread; the test owns its runtime) and
/// returns its report.
fn finish_diag(diag: Child, cluster: &Cluster) -> Value {
    let output = diag.wait_with_output().unwrap();
    let log = std::fs::read_to_string(cluster.dir.path().join("diag.log")).unwrap_or_default();
    assert!(output.status.success(), "diag failed: {log}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("diag printed no JSON ({err}): {log}"))
}

fn start_diag(cluster: &Cluster, count: u64) -> Child {
    // Long enough that a killed worker surely holds attempts that counted their
    // execution but committed nothing yet: their redelivery is what the test proves.
    // Since a step's effect commits with its outcome, an attempt's only uncommitted time
    // besides this sleep is one commit, so the sleep must dominate even on a loaded
    // machine.
    spawn_diag(cluster, count, 50, 200)
}

/// `stella diag noop`: `count` jobs over `tenants`, each sleeping `sleep_ms`; its report
/// on stdout (`finish_diag`), its log in `diag.log`.
fn spawn_diag(cluster: &Cluster, count: u64, tenants: u32, sleep_ms: u64) -> Child {
    let log = std::fs::File::create(cluster.dir.path().join("diag.log")).unwrap();
    cluster
        .command(&[
            "diag",
            "noop",
            "--count",
            &count.to_string(),
            "--tenants",
            &tenants.to_string(),
            "--sleep-ms",
            &sleep_ms.to_string(),
            "--timeout-secs",
            "900",
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn assert_exactly_once(report: &Value, count: u64) {
    assert_eq!(report["submitted"], count, "{report}");
    assert_eq!(report["completed"], count, "{report}");
    assert_eq!(report["effects"], count, "{report}");
    assert_eq!(report["dead_lettered"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_job_and_repeats_no_effect() {
    let Ok(valkey_url) = std::env::var("STELLA_VALKEY_URL") else {
        panic!("STELLA_VALKEY_URL must be set with the other services");
    };
    worker_killed_mid_run(&valkey_url, false).await;
}

/// The same on the local Valkey Cluster (`ops/services.sh up`: three primaries with a
/// replica each): hash-tagged keys, scripts and pipelines routed to the role's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_on_a_valkey_cluster_loses_no_job_and_repeats_no_effect() {
    let Ok(valkey_url) = std::env::var("STELLA_TEST_VALKEY_CLUSTER_URL") else {
        panic!("STELLA_TEST_VALKEY_CLUSTER_URL must be set with the other services");
    };
    worker_killed_mid_run(&valkey_url, true).await;
}

async fn worker_killed_mid_run(valkey_url: &str, on_cluster: bool) {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let count = job_count();
    let prefix = format!("crash-{}", uuid::Uuid::new_v4().simple());
    let mut cluster = cluster(&db.url, valkey_url, &prefix);
    if on_cluster {
        cluster.on_valkey_cluster();
    }
    let _serve = cluster.spawn(&["serve"], "serve.log");
    let mut worker_a = cluster.spawn(&["worker"], "worker-a.log");
    let _worker_b = cluster.spawn(&["worker"], "worker-b.log");
    for log in ["serve.log", "worker-a.log", "worker-b.log"] {
        cluster.wait_started(log);
    }
    let diag = start_diag(&cluster, count);

    wait_for_effects(&db.url, i64::try_from(count / 4).unwrap()).await;
    worker_a.0.kill().unwrap(); // SIGKILL: no cleanup, entries stay pending on it
    worker_a.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _worker_a_again = cluster.spawn(&["worker"], "worker-a2.log");

    let report = finish_diag(diag, &cluster);
    assert_exactly_once(&report, count);
    assert!(
        report["executions"].as_u64().unwrap() > count,
        "no redelivery happened, so the kill proved nothing: {report}"
    );
    db.finish().await;
}

fn start_valkey(binary: &str, dir: &Path, port: u16) -> Proc {
    let child = Command::new(binary)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--appendonly",
            "yes",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "valkey did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valkey_restart_mid_run_loses_no_job_and_repeats_no_effect() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Ok(binary) = std::env::var("STELLA_TEST_VALKEY_SERVER") else {
        panic!("STELLA_TEST_VALKEY_SERVER must be set with the other services");
    };
    let count = job_count();
    let valkey_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut valkey = start_valkey(&binary, valkey_dir.path(), port);
    let cluster = cluster(&db.url, &format!("redis://127.0.0.1:{port}"), "stella");
    let _serve = cluster.spawn(&["serve"], "serve.log");
    let _worker_a = cluster.spawn(&["worker"], "worker-a.log");
    let _worker_b = cluster.spawn(&["worker"], "worker-b.log");
    let diag = start_diag(&cluster, count);

    wait_for_effects(&db.url, i64::try_from(count / 4).unwrap()).await;
    // A graceful restart: SIGTERM makes Valkey fsync its append-only file and exit.
    let pid = valkey.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    valkey.0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _valkey_again = start_valkey(&binary, valkey_dir.path(), port);

    let report = finish_diag(diag, &cluster);
    assert_exactly_once(&report, count);
    assert!(report["executions"].as_u64().unwrap() >= count, "{report}");
    db.finish().await;
}

/// A Valkey Cluster of its own (three primaries, a replica each) for a test that kills
/// one of its primaries: the nodes are children of the test.
struct ValkeyCluster {
    nodes: Vec<(u16, Proc)>,
    binary: String,
    dir: tempfile::TempDir,
}

impl ValkeyCluster {
    fn start(binary: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            binary: binary.to_owned(),
            dir,
        };
        for _ in 0..6 {
            let port = free_port();
            let node = cluster.node(port);
            cluster.nodes.push((port, node));
        }
        for (port, _) in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "valkey did not start on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let out = cluster.tool(&["create", "--replicas", "1"]);
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// Starts the node on `port` (again: its folder keeps its cluster state, so a
    /// restarted node rejoins, as a replica once another took its slots over).
    fn node(&self, port: u16) -> Proc {
        let node_dir = self.dir.path().join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .args(["--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    }

    fn restart(&mut self, port: u16) {
        let node = self.node(port);
        let (_, slot) = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        *slot = node;
    }

    fn ports(&self) -> String {
        let ports: Vec<String> = self.nodes.iter().map(|(p, _)| p.to_string()).collect();
        ports.join(",")
    }

    /// `ops/valkey_cluster.py ACTION --ports ... ARGS`.
    fn tool(&self, args: &[&str]) -> std::process::Output {
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/ops/valkey_cluster.py"
            ))
            .arg(args[0])
            .args(["--ports", &self.ports()])
            .args(&args[1..])
            .output()
            .unwrap()
    }

    fn url(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect();
        urls.join(",")
    }

    /// SIGKILLs the primary serving `key`'s slot; returns its port.
    fn kill_primary_of(&mut self, key: &str) -> u16 {
        let out = self.tool(&["primary-of", "--key", key]);
        assert!(
            out.status.success(),
            "primary-of: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let (_, node) = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        node.0.kill().unwrap();
        node.0.wait().unwrap();
        port
    }
}

/// A Valkey Cluster primary SIGKILLed mid-run, the one holding the jobs' role: its
/// replica takes over (sends waited for the replica to hold them), the workers follow the
/// new primary, the killed node comes back as its replica, and every job completes
/// with its effect exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valkey_cluster_primary_killed_mid_run_loses_no_job_and_repeats_no_effect() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Ok(binary) = std::env::var("STELLA_TEST_VALKEY_SERVER") else {
        panic!("STELLA_TEST_VALKEY_SERVER must be set with the other services");
    };
    let count = job_count();
    let mut valkey = ValkeyCluster::start(&binary);
    let mut cluster = cluster(&db.url, &valkey.url(), "stella");
    cluster.on_valkey_cluster();
    let _serve = cluster.spawn(&["serve"], "serve.log");
    let _worker_a = cluster.spawn(&["worker"], "worker-a.log");
    let _worker_b = cluster.spawn(&["worker"], "worker-b.log");
    for log in ["serve.log", "worker-a.log", "worker-b.log"] {
        cluster.wait_started(log);
    }
    let diag = start_diag(&cluster, count);

    wait_for_effects(&db.url, i64::try_from(count / 4).unwrap()).await;
    // `diag noop` jobs run on the `diag` role: its keys share the slot of `{diag}`.
    let killed = valkey.kill_primary_of("{diag}");
    // The replica takes over within a few node timeouts (2 s each).
    let deadline = Instant::now() + Duration::from_secs(60);
    let now_serving = loop {
        let out = valkey.tool(&["primary-of", "--key", "{diag}"]);
        let port: u16 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if (port != 0 && port != killed) || Instant::now() > deadline {
            break port;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let effects_at_failover = effects_so_far(&db.url).await;
    // The new primary has no replica, and sends wait for one's fsync
    // (`valkey.wait_replicas = 1`): they are refused until the killed node is back, as
    // its supervisor (systemd) would bring it, and rejoins as the new primary's replica.
    valkey.restart(killed);
    let report = finish_diag(diag, &cluster);
    assert_exactly_once(&report, count);
    assert!(
        now_serving != 0 && now_serving != killed,
        "no failover happened (killed {killed}, now {now_serving}): {}",
        cluster.logs()
    );
    // The new primary served part of the run: it was not over before the failover.
    assert!(
        u64::try_from(effects_at_failover).unwrap() < count,
        "the run ended before the failover ({effects_at_failover} effects), so it proved nothing"
    );
    db.finish().await;
}

/// A worker whose Valkey stops answering (SIGSTOP: a stalled link, packets unanswered)
/// for longer than its consumer lease stops acting and exits with an error, leaving its
/// deliveries to others; once Valkey answers again, another worker finishes every job,
/// each effect exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_longer_than_its_lease_stops_acting_and_exits() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Ok(binary) = std::env::var("STELLA_TEST_VALKEY_SERVER") else {
        panic!("STELLA_TEST_VALKEY_SERVER must be set with the other services");
    };
    let valkey_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let valkey = start_valkey(&binary, valkey_dir.path(), port);
    let mut cluster = cluster(&db.url, &format!("redis://127.0.0.1:{port}"), "stella");
    cluster
        .env
        .push(("STELLA_RUNTIME_LEASE_SECS".into(), "6".into()));
    let mut worker_a = cluster.spawn(&["worker"], "worker-a.log");
    cluster.wait_started("worker-a.log");
    let count = 200;
    // Long enough that worker A still runs them when its lease is gone (a delivery whose
    // step ended is released even if its acknowledgement failed, so a worker that holds
    // nothing has nothing to give up).
    let diag = spawn_diag(&cluster, count, 4, 20_000);
    // Some jobs have run, so the worker holds deliveries.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut conn = AnyConnection::connect(&db.url).await.unwrap();
        let (runs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM noop_executions")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if runs > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no job started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = valkey.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stalled = Instant::now();
    // The lease is 6 s: the worker gives up after that, well before 30 s.
    let status = loop {
        if let Some(status) = worker_a.0.try_wait().unwrap() {
            break status;
        }
        if stalled.elapsed() > Duration::from_secs(30) {
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
            panic!("worker A still runs 30 s into the stall:{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gave_up_after = stalled.elapsed();
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let text = std::fs::read_to_string(cluster.dir.path().join("worker-a.log")).unwrap();
    assert!(!status.success(), "worker A exited with {status}: {text}");
    assert!(
        text.contains("the worker stopped acting") && text.contains("runtime.lease_secs"),
        "worker A said why: {text}"
    );
    assert!(
        gave_up_after >= Duration::from_secs(6),
        "worker A gave up after {gave_up_after:?}, before its 6 s lease was gone"
    );
    // Another worker takes the abandoned deliveries over and finishes everything once.
    let _worker_b = cluster.spawn(&["worker"], "worker-b.log");
    let report = finish_diag(diag, &cluster);
    assert!(
        report["completed"] == count && report["dead_lettered"] == 0,
        "{report}:{}",
        cluster.logs()
    );
    assert_exactly_once(&report, count);
    // Each job ran at most twice: by A, then once by B. B's heartbeat keeps every
    // delivery it holds alive, even when two tenants' entries share a stream id (they
    // did, and one hid the other: B took its own running entries over again and again).
    assert!(
        report["executions"].as_u64().unwrap() <= 2 * count,
        "a held delivery was taken over while it ran: {report}:{}",
        cluster.logs()
    );
    println!("worker A stopped acting {gave_up_after:?} into the stall: {report}");
    db.finish().await;
}

/// Exports under SIGKILL (PostgreSQL + Valkey + S3): an API-only `serve` and two workers;
/// a calm run of a SARIF profile distributed to the object store gives the reference
/// files; then forty runs of the same revision as of the same time, and worker A is
/// killed while they are under way. Every run must complete with the calm run's bytes,
/// file for file, and one object per file under its prefix in S3; some step must have
/// been run again, or the kill proved nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_export_leaves_every_run_complete_and_identical() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Ok(valkey_url) = std::env::var("STELLA_VALKEY_URL") else {
        panic!("STELLA_VALKEY_URL must be set with the other services");
    };
    let Some(s3) = crate::common::s3_target() else {
        panic!("STELLA_S3_ENDPOINT must be set with the other services");
    };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let served = Served::start(
        &db.url,
        &valkey_url,
        [
            ("STELLA_API_MAX_EXPORT_RUNS_PER_TENANT", "0".into()),
            ("STELLA_S3_ENDPOINT", s3.endpoint.clone()),
            ("STELLA_S3_BUCKET", s3.bucket.clone()),
            ("STELLA_S3_REGION", s3.region.clone()),
            ("STELLA_S3_ACCESS_KEY_ID", s3.access_key_id.clone()),
            (
                "STELLA_S3_SECRET_ACCESS_KEY",
                s3.secret_access_key.expose().to_owned(),
            ),
            ("STELLA_S3_PREFIX", s3.prefix.clone()),
        ],
    )
    .await;
    let port = served.port;

    // A tenant, the Go advisories, and a scan of a real SBOM, through the CLI.
    let cli = |args: &[&str]| {
        let output = served
            .cluster
            .command(args)
            .env("STELLA_SERVER", format!("http://127.0.0.1:{port}"))
            .env("STELLA_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "stella {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    cli(&["tenants", "create", "acme", "--name", "Acme"]);
    cli(&[
        "advisories",
        "import",
        data.join("advisories/Go-all.zip").to_str().unwrap(),
    ]);
    let sbom = data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json");
    let out = cli(&["--tenant", "acme", "scan", sbom.to_str().unwrap(), "--wait"]);
    let scan = out
        .lines()
        .find_map(|l| l.strip_prefix("scan "))
        .unwrap()
        .trim()
        .to_owned();

    let (status, _, text) = served
        .call(
            reqwest::Method::POST,
            "/export-profiles",
            Some(serde_json::json!({
            "name": "crash", "kind": "sarif", "selectors": {"scans": [scan]},
            "distribution": {"to": "objects", "prefix": "crash"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let start = |key: String| {
        let request = served
            .http
            .post(format!("{}/exports", served.base))
            .bearer_auth(ADMIN)
            .header("x-stella-tenant", "acme")
            .header("idempotency-key", key)
            .json(&serde_json::json!({"profile": "crash", "as_of": "2026-01-01T00:00:00Z"}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 202);
            let body: Value = response.json().await.unwrap();
            body["export_id"].as_str().unwrap().to_owned()
        }
    };
    let wait = |id: String| {
        let served = &served;
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let (_, export, text) = served
                    .call(reqwest::Method::GET, &format!("/exports/{id}"), None)
                    .await;
                match export["status"].as_str() {
                    Some("completed") => return export,
                    Some("failed" | "cancelled") => panic!("export {id}: {text}"),
                    _ => {}
                }
                assert!(Instant::now() < deadline, "export {id} never ended: {text}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let files_of = |export: &Value| -> Vec<(String, String, u64)> {
        export["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["sha256"].as_str().unwrap().to_owned(),
                    f["size_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let calm = files_of(&wait(start("calm".into()).await).await);
    assert!(
        calm.iter().any(|(name, ..)| name.ends_with(".sarif")),
        "{calm:?}"
    );

    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(start(format!("run-{i}")).await);
    }
    // Kill worker A once a few runs are done and the rest under way. A kill can land
    // while A holds only steps it has not started (nothing to redo), so it is repeated,
    // up to five times, until some step has run twice.
    let completed = || {
        let served = &served;
        async move {
            let (_, page, _) = served
                .call(
                    reqwest::Method::GET,
                    "/exports?status=completed&limit=500",
                    None,
                )
                .await;
            page["items"].as_array().map_or(0, Vec::len)
        }
    };
    let rerun_steps = || async {
        let mut conn = AnyConnection::connect(&db.url).await.unwrap();
        let (all, distinct): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT job_id || ':' || step) FROM job_events \
             WHERE tenant_id = 'acme' AND to_state = 'running' \
             AND job_id IN (SELECT id FROM jobs WHERE tenant_id = 'acme' AND kind = 'export')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        all - distinct
    };
    let mut workers_a = Vec::new();
    let mut kills = 0;
    let mut threshold = 4;
    let mut top_ups = 0;
    while kills < 5 {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let done = completed().await;
            if done >= threshold || done == ids.len() + 1 {
                break;
            }
            assert!(Instant::now() < deadline, "no export completed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if completed().await > ids.len() {
            // Everything finished before a kill landed mid-step: more runs, so the next
            // kill has work in flight to interrupt (a fast machine finished them all).
            top_ups += 1;
            assert!(
                top_ups <= 5,
                "every run finished before each of {kills} kills"
            );
            for i in 0..10 {
                ids.push(start(format!("more-{kills}-{i}")).await);
            }
            threshold = completed().await + 2;
            continue;
        }
        kills += 1;
        workers_a.push(
            served
                .kill_worker_a(&format!("worker-a{}.log", kills + 1))
                .await,
        );
        // The dead worker's entries are taken over after 2 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if rerun_steps().await > 0 {
            break;
        }
        threshold = completed().await + 2;
    }
    println!("worker A killed {kills} time(s)");

    let objects = stella_store::object::S3Store::new(&s3);
    for id in &ids {
        let export = wait(id.clone()).await;
        assert_eq!(files_of(&export), calm, "export {id}");
        // One object per file under the run's prefix, of the file's size.
        let copies: Vec<(String, u64)> =
            stella_store::object::ObjectStore::list(&objects, &format!("tenants/acme/crash/{id}/"))
                .await
                .unwrap()
                .into_iter()
                .map(|o| {
                    let name = o.key.as_str().rsplit('/').next().unwrap().to_owned();
                    (name, o.size)
                })
                .collect();
        let expected: Vec<(String, u64)> =
            calm.iter().map(|(n, _, size)| (n.clone(), *size)).collect();
        assert_eq!(copies, expected, "export {id}");
    }
    // Some step of some run ran twice: the kill interrupted work in flight.
    let mut conn = AnyConnection::connect(&db.url).await.unwrap();
    let (runs,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM job_events WHERE tenant_id = 'acme' AND to_state = 'running' \
         AND job_id IN (SELECT id FROM jobs WHERE tenant_id = 'acme' AND kind = 'export')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let steps = 4 * (ids.len() as i64 + 1);
    assert!(
        runs > steps,
        "{runs} step executions for {steps} steps: no redelivery, so the kill proved nothing"
    );
    for info in stella_store::object::ObjectStore::list(&objects, "")
        .await
        .unwrap()
    {
        let _ = stella_store::object::ObjectStore::delete(&objects, &info.key).await;
    }
    db.finish().await;
}

/// A Standard Webhooks secret for the crash test's receiver.
const CRASH_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Notifications under a worker's SIGKILL (PostgreSQL + Valkey): 30 scans, one webhook
/// delivery each to a slow local receiver that verifies signatures; worker A is killed
/// while deliveries are in flight. Counted at the receiver, each event arrives under one
/// delivery id, answered 200 at least once (a wire retry repeats the id, so a receiver
/// drops the copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_delivery_sends_each_notification_once_in_effect() {
    notifications_across(Fault::KillWorker).await;
}

/// The same with Valkey restarted (SIGTERM, append-only file) while deliveries are in
/// flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valkey_restart_mid_delivery_sends_each_notification_once_in_effect() {
    notifications_across(Fault::RestartValkey).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillWorker,
    RestartValkey,
}

async fn notifications_across(fault: Fault) {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    // A slow receiver: each answer takes 300 ms, so the fault lands mid-delivery.
    let Some(receiver) = crate::webhook::Receiver::start(
        &[CRASH_SECRET],
        serde_json::json!([{"sleep": 0.3, "times": 100000}]),
    ) else {
        return;
    };
    let valkey_dir = tempfile::tempdir().unwrap();
    let (mut valkey, valkey_url) = match fault {
        Fault::KillWorker => {
            let Ok(url) = std::env::var("STELLA_VALKEY_URL") else {
                panic!("STELLA_VALKEY_URL must be set with the other services");
            };
            (None, url)
        }
        Fault::RestartValkey => {
            let Ok(binary) = std::env::var("STELLA_TEST_VALKEY_SERVER") else {
                panic!("STELLA_TEST_VALKEY_SERVER must be set with the other services");
            };
            let port = free_port();
            let valkey = start_valkey(&binary, valkey_dir.path(), port);
            (
                Some((valkey, binary, port)),
                format!("redis://127.0.0.1:{port}"),
            )
        }
    };
    let served = Served::start(
        &db.url,
        &valkey_url,
        [("STELLA_OUTBOUND_ALLOW_HOSTS", "127.0.0.1".into())],
    )
    .await;
    let status = served
        .http
        .post(format!("{}/tenants", served.base))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"id": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 201);
    for (path, body) in [
        (
            "/notify/channels",
            serde_json::json!({"name": "hook", "secret": CRASH_SECRET,
                "config": {"type": "webhook", "url": receiver.url("/hook")},
                "throttle": {"max": 1000, "per_seconds": 60}}),
        ),
        (
            "/notify/rules",
            serde_json::json!({"name": "scans", "match": {"event_kinds": ["scan.completed"]},
                "actions": [{"channel": "hook"}]}),
        ),
    ] {
        let (status, _, text) = served.call(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    // 30 scans, 30 `scan.completed` events, 30 deliveries.
    const SCANS: usize = 30;
    let sbom = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "components": [{"type": "library", "name": "left-pad", "version": "1.3.0",
                        "purl": "pkg:npm/left-pad@1.3.0", "bom-ref": "left-pad"}]
    });
    for i in 0..SCANS {
        let response = served
            .http
            .post(format!("{}/scans?name=app-{i}", served.base))
            .bearer_auth(ADMIN)
            .header("x-stella-tenant", "acme")
            .json(&sbom)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
    // The fault, once deliveries are under way.
    receiver.wait_for(3, Duration::from_secs(120));
    let mut restarted = Vec::new();
    match (fault, valkey.take()) {
        (Fault::RestartValkey, Some((server, binary, port))) => {
            let pid = server.0.id().to_string();
            assert!(Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success());
            let mut server = server;
            server.0.wait().unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            restarted.push(start_valkey(&binary, valkey_dir.path(), port));
        }
        _ => restarted.push(served.kill_worker_a("worker-a2.log").await), // mid-delivery
    }

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, page, text) = served
            .call(
                reqwest::Method::GET,
                "/notify/deliveries?status=delivered&limit=500",
                None,
            )
            .await;
        let n = page["items"].as_array().map_or(0, Vec::len);
        if n == SCANS {
            break;
        }
        assert!(n <= SCANS, "more deliveries than events: {text}");
        if Instant::now() >= deadline {
            let (_, _, all) = served
                .call(reqwest::Method::GET, "/notify/deliveries?limit=500", None)
                .await;
            panic!(
                "{n} of {SCANS} delivered; all deliveries: {all}\nlogs:{}",
                served.cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Counted at the receiver: each event under exactly one delivery id, answered 200
    // at least once; wire retries share the id.
    let attempts = receiver.attempts();
    assert!(
        attempts.iter().all(|a| a.verified == Some(true)),
        "every attempt signed"
    );
    let mut ids_by_event: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut delivered = std::collections::BTreeSet::new();
    for a in &attempts {
        let body: Value = serde_json::from_str(&a.body).unwrap();
        let id = a.webhook_id.clone().unwrap();
        ids_by_event
            .entry(body["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(id.clone());
        if a.answer == 200 {
            delivered.insert(id);
        }
    }
    assert_eq!(
        ids_by_event.len(),
        SCANS,
        "every event reached the receiver"
    );
    assert!(
        ids_by_event.values().all(|ids| ids.len() == 1),
        "one delivery id per event: {ids_by_event:?}"
    );
    assert_eq!(delivered.len(), SCANS, "each delivered");
    println!(
        "{} wire attempts for {SCANS} deliveries across {fault:?}",
        attempts.len()
    );
    db.finish().await;
}

async fn count(conn: &mut AnyConnection, sql: &str, rollout: &str) -> i64 {
    sqlx::query_as::<_, (i64,)>(sql)
        .bind(rollout)
        .fetch_one(conn)
        .await
        .map(|r| r.0)
        .unwrap()
}

/// A pack rolled out to 600 tenants in one wave while its processes die: a worker is
/// SIGKILLed while the wave's shadow jobs run, and `serve` (the scheduler's leader) while
/// the wave is being activated (between its two batches of 500). The restarted leader
/// continues from the committed state: every tenant is activated exactly once (one
/// assignment, one `policy.updated` event), none is skipped, and the rollout completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_wave_activates_each_tenant_once_and_skips_none() {
    let Some(db) = crate::common::postgres().await else {
        return;
    };
    let Ok(valkey_url) = std::env::var("STELLA_VALKEY_URL") else {
        panic!("STELLA_VALKEY_URL must be set with the other services");
    };
    let served = Served::start(
        &db.url,
        &valkey_url,
        [
            // Passes 1.5 s apart, so a kill lands between two activation batches; a dead
            // leader's lease lapses after 3 s.
            ("STELLA_SCHEDULER_POLL_INTERVAL_MS", "1500".into()),
            ("STELLA_SCHEDULER_LEASE_TTL_SECS", "3".into()),
        ],
    )
    .await;
    const TENANTS: usize = 600;
    let create = |name: String| {
        let request = served
            .http
            .post(format!("{}/tenants", served.base))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({"id": name, "name": name}));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201);
        }
    };
    create("acme".into()).await;
    let names: Vec<String> = (0..TENANTS).map(|i| format!("t{i:04}")).collect();
    for chunk in names.chunks(20) {
        futures::future::join_all(chunk.iter().map(|name| create(name.clone()))).await;
    }
    // One scanned target, so the wave's gate has a scan to judge.
    let response = served
        .http
        .post(format!("{}/scans?target=web", served.base))
        .bearer_auth(ADMIN)
        .header("x-stella-tenant", "acme")
        .header("content-type", "application/json")
        .body(crate::scans::tiny_sbom())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, target, _) = served
            .call(reqwest::Method::GET, "/targets/web", None)
            .await;
        if target["last_scan_id"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scan never completed: {target}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, text) = served
        .call(
            reqwest::Method::POST,
            "/policy-packs",
            Some(serde_json::json!({"name": "baseline", "document":
                "name = 'baseline'\nversion = 1\n[[rules]]\nid = 'critical'\n\
                 when = { min_severity = 9.0 }\noutcome = 'block'\n"})),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let (status, rollout, text) = served
        .call(
            reqwest::Method::POST,
            "/rollouts",
            Some(serde_json::json!({
                "pack": "baseline", "version": 1, "waves": [{"percent": 100}],
                "gate": {"min_scans": 1}, "bake_seconds": 0, "reason": "crash test"
            })),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let id = rollout["id"].as_str().unwrap().to_owned();
    let total = i64::try_from(TENANTS + 1).unwrap();
    let mut conn = AnyConnection::connect(&db.url).await.unwrap();

    // A worker dies while the shadow jobs run.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let shadowed = count(
            &mut conn,
            "SELECT COUNT(*) FROM rollout_shadows WHERE rollout_id = $1",
            &id,
        )
        .await;
        if shadowed > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no shadow result appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _dead_worker = served.kill_worker_a("worker-a2.log").await;

    // The leader dies between the wave's activation batches.
    let activated = "SELECT COUNT(*) FROM rollout_tenants WHERE rollout_id = $1 \
                     AND activated_at IS NOT NULL";
    let deadline = Instant::now() + Duration::from_secs(300);
    let before_kill = loop {
        let n = count(&mut conn, activated, &id).await;
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < deadline, "the wave was never activated");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _dead_serve = served.kill_serve("serve-2.log").await;
    assert!(
        before_kill < total,
        "the kill came after the whole wave was activated ({before_kill} of {total})"
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, rollout, _) = served
            .call(reqwest::Method::GET, &format!("/rollouts/{id}"), None)
            .await;
        if rollout["state"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not complete after the restart: {rollout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(&mut conn, activated, &id).await,
        total,
        "none skipped"
    );
    let assigned = count(
        &mut conn,
        "SELECT COUNT(*) FROM tenant_packs WHERE rollout_id = $1",
        &id,
    )
    .await;
    assert_eq!(assigned, total);
    let events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, COUNT(*) FROM events WHERE kind = 'policy.updated' \
         AND payload LIKE '%' || $1 || '%' GROUP BY tenant_id",
    )
    .bind(&id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(events.len(), TENANTS + 1, "one event per tenant");
    assert!(
        events.iter().all(|(_, n)| *n == 1),
        "a tenant activated twice: {:?}",
        events.iter().filter(|(_, n)| *n != 1).collect::<Vec<_>>()
    );
    let activations = count(
        &mut conn,
        "SELECT COUNT(*) FROM rollout_transitions WHERE rollout_id = $1 AND action = 'activated'",
        &id,
    )
    .await;
    assert_eq!(activations, 1);
}
