//! What the chaos run stands on, all its own and all on this machine: a bridge and one
//! network namespace per worker (so a worker can be cut off), and a PostgreSQL, a Valkey,
//! an S3 server (Garage, or RustFS with `STELLA_SERVICES_S3=rustfs`), an SMTP sink and a
//! webhook receiver listening on the bridge's address, each
//! of which the run stops and starts again. Every process is killed and every namespace
//! and link removed when the run ends, however it ends.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command, panicking with its output when it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("{program} {args:?}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `host:port` accepts connections.
pub(crate) fn wait_port(host: &str, port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bridge holding the services' address, and one namespace per worker joined to it by
/// a veth pair. Addresses exist only on the bridge and inside the namespaces.
pub(crate) struct Net {
    /// The bridge's address: every service listens here.
    pub(crate) host: String,
    bridge: String,
    /// (namespace, host-side veth) per worker.
    spaces: Vec<(String, String)>,
}

impl Net {
    /// Whether namespaces can be made here (root with `ip`).
    pub(crate) fn available() -> bool {
        Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && is_root()
    }

    pub(crate) fn create(workers: usize) -> Net {
        // A subnet and names of this run's own (interface names are at most 15 bytes).
        let tag = std::process::id() % 10_000;
        let octet = 20 + std::process::id() % 200;
        let bridge = format!("stc{tag}br");
        let mut net = Net {
            host: format!("10.77.{octet}.1"),
            bridge: bridge.clone(),
            spaces: Vec::new(),
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run(
            "ip",
            &["addr", "add", &format!("{}/24", net.host), "dev", &bridge],
        );
        run("ip", &["link", "set", &bridge, "up"]);
        for i in 0..workers {
            let ns = format!("stc{tag}n{i}");
            let outside = format!("stc{tag}h{i}");
            let inside = format!("stc{tag}p{i}");
            run("ip", &["netns", "add", &ns]);
            net.spaces.push((ns.clone(), outside.clone()));
            run(
                "ip",
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ],
            );
            run("ip", &["link", "set", &inside, "netns", &ns]);
            run("ip", &["link", "set", &outside, "master", &bridge]);
            run("ip", &["link", "set", &outside, "up"]);
            let address = format!("10.77.{octet}.{}/24", 10 + i);
            run(
                "ip",
                &[
                    "netns", "exec", &ns, "ip", "addr", "add", &address, "dev", &inside,
                ],
            );
            run(
                "ip",
                &["netns", "exec", &ns, "ip", "link", "set", &inside, "up"],
            );
            run(
                "ip",
                &["netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
            );
        }
        net
    }

    /// The namespace of worker `i`.
    pub(crate) fn namespace(&self, i: usize) -> &str {
        &self.spaces[i].0
    }

    /// Cuts worker `i` off (`false`) or joins it again (`true`): its link goes down, so
    /// its packets are lost, not refused, as in a real partition.
    pub(crate) fn link(&self, i: usize, up: bool) {
        run(
            "ip",
            &[
                "link",
                "set",
                &self.spaces[i].1,
                if up { "up" } else { "down" },
            ],
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

impl Net {
    /// Removes the namespaces, links and bridge (idempotent).
    pub(crate) fn remove(&self) {
        for (ns, outside) in &self.spaces {
            for args in [["link", "del", outside], ["netns", "del", ns]] {
                let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The PostgreSQL binaries: `$STELLA_TEST_PG_BINDIR` (from `ops/services.sh up`), else
/// `pg_config --bindir`.
fn pg_bin(name: &str) -> String {
    let dir = std::env::var("STELLA_TEST_PG_BINDIR").ok().or_else(|| {
        Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    });
    match dir {
        Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
        _ => name.to_owned(),
    }
}

/// A PostgreSQL cluster of the run's own, run as the `postgres` user (it refuses root).
pub(crate) struct Postgres {
    data: PathBuf,
    log: PathBuf,
    pub(crate) port: u16,
    host: String,
}

impl Postgres {
    pub(crate) fn start(dir: &Path, host: &str, subnet: &str) -> Postgres {
        // A folder the `postgres` user owns: the cluster and its log.
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home).unwrap();
        run("chown", &["postgres:postgres", home.to_str().unwrap()]);
        let data = home.join("data");
        let initdb = pg_bin("initdb");
        run(
            "runuser",
            &[
                "-u",
                "postgres",
                "--",
                &initdb,
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let hba = data.join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap();
        text.push_str(&format!("host all all {subnet} trust\n"));
        std::fs::write(&hba, text).unwrap();
        let port = free_port();
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\nlisten_addresses = '{host}'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 200\nfsync = on\n",
            data.display()
        ));
        std::fs::write(&conf, text).unwrap();
        let pg = Postgres {
            log: home.join("postgres.log"),
            data,
            port,
            host: host.to_owned(),
        };
        pg.ctl(&["start", "-w", "-t", "60"]);
        pg
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@{}:{}/postgres", self.host, self.port)
    }

    fn ctl(&self, args: &[&str]) {
        let ctl = pg_bin("pg_ctl");
        let mut all = vec![
            "-u",
            "postgres",
            "--",
            ctl.as_str(),
            "-D",
            self.data.to_str().unwrap(),
            "-l",
            self.log.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    /// `pg_ctl restart -m immediate`: the server aborts without a checkpoint (every
    /// connection dropped, recovery from the WAL on start), then starts again.
    pub(crate) fn restart_immediate(&self) {
        self.ctl(&["restart", "-m", "immediate", "-w", "-t", "60"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Postgres {
    /// Stops the server at once (idempotent).
    pub(crate) fn stop(&self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &pg_bin("pg_ctl"), "-D"])
            .arg(&self.data)
            .args(["stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Valkey of the run's own, append-only, on the bridge's address.
pub(crate) struct Valkey {
    binary: String,
    dir: PathBuf,
    host: String,
    pub(crate) port: u16,
    proc: Option<Proc>,
}

impl Valkey {
    pub(crate) fn start(binary: &str, dir: &Path, host: &str) -> Valkey {
        let dir = dir.join("valkey");
        std::fs::create_dir_all(&dir).unwrap();
        let mut valkey = Valkey {
            binary: binary.to_owned(),
            dir,
            host: host.to_owned(),
            port: free_port(),
            proc: None,
        };
        valkey.spawn();
        valkey
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--bind", &self.host, "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
        wait_port(&self.host, self.port, "valkey", Duration::from_secs(30));
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    /// Kills the server for good (the run's end).
    pub(crate) fn kill(&mut self) {
        self.proc = None;
    }

    /// A graceful restart: SIGTERM makes Valkey fsync its append-only file and exit.
    pub(crate) fn restart(&mut self, down_for: Duration) {
        if let Some(proc) = self.proc.take() {
            terminate(&proc);
            drop(proc);
        }
        std::thread::sleep(down_for);
        self.spawn();
    }
}

/// SIGTERM, then waits for the process to exit.
pub(crate) fn terminate(proc: &Proc) {
    let _ = Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{}", proc.0.id())).exists()
        && std::fs::read_to_string(format!("/proc/{}/stat", proc.0.id()))
            .is_ok_and(|s| !s.contains(") Z "))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which S3 server the run stands on: the binary `ops/services.sh up` exported
/// (`STELLA_TEST_GARAGE_BIN`, or `STELLA_TEST_RUSTFS_BIN` with `STELLA_SERVICES_S3=rustfs`).
#[derive(Debug, Clone)]
pub(crate) enum S3Server {
    Garage(String),
    RustFs(String),
}

impl S3Server {
    fn binary(&self) -> &str {
        match self {
            S3Server::Garage(binary) | S3Server::RustFs(binary) => binary,
        }
    }

    pub(crate) fn from_env() -> Option<S3Server> {
        std::env::var("STELLA_TEST_RUSTFS_BIN")
            .ok()
            .map(S3Server::RustFs)
            .or_else(|| {
                std::env::var("STELLA_TEST_GARAGE_BIN")
                    .ok()
                    .map(S3Server::Garage)
            })
    }
}

/// A single-node S3 server of the run's own (Garage or RustFS), with one bucket and one
/// key.
pub(crate) struct ObjectServer {
    server: S3Server,
    data: PathBuf,
    region: &'static str,
    conf: PathBuf,
    log: PathBuf,
    host: String,
    pub(crate) s3_port: u16,
    pub(crate) key_id: String,
    pub(crate) secret: String,
    pub(crate) bucket: String,
    proc: Option<Proc>,
}

impl ObjectServer {
    pub(crate) fn start(server: &S3Server, dir: &Path, host: &str) -> ObjectServer {
        match server {
            S3Server::Garage(_) => ObjectServer::start_garage(server, dir, host),
            S3Server::RustFs(_) => ObjectServer::start_rustfs(server, dir, host),
        }
    }

    /// RustFS on one folder, path-style, its keys from the environment; the bucket made
    /// through the S3 API.
    fn start_rustfs(server: &S3Server, dir: &Path, host: &str) -> ObjectServer {
        let root = dir.join("rustfs");
        std::fs::create_dir_all(root.join("data")).unwrap();
        let mut rustfs = ObjectServer {
            server: server.clone(),
            data: root.join("data"),
            region: "us-east-1",
            conf: root.clone(),
            log: dir.join("rustfs.log"),
            host: host.to_owned(),
            s3_port: free_port(),
            key_id: format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            secret: uuid::Uuid::new_v4().simple().to_string(),
            bucket: "chaos".to_owned(),
            proc: None,
        };
        rustfs.spawn();
        wait_port(host, rustfs.s3_port, "rustfs S3", Duration::from_secs(60));
        let store = stella_store::object::S3Store::new(&rustfs.target());
        let deadline = Instant::now() + Duration::from_secs(60);
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                while let Err(err) = store.ensure_bucket().await {
                    assert!(Instant::now() < deadline, "rustfs: no bucket: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        rustfs
    }

    fn start_garage(server: &S3Server, dir: &Path, host: &str) -> ObjectServer {
        let root = dir.join("garage");
        std::fs::create_dir_all(root.join("meta")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let hex = |n: usize| -> String {
            let mut out = String::new();
            while out.len() < n {
                out.push_str(&uuid::Uuid::new_v4().simple().to_string());
            }
            out.truncate(n);
            out
        };
        let secret_file = root.join("rpc_secret");
        std::fs::write(&secret_file, hex(64)).unwrap();
        set_mode(&secret_file, 0o600);
        let (rpc, s3) = (free_port(), free_port());
        let conf = root.join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"{host}:{rpc}\"\n\
                 rpc_public_addr = \"{host}:{rpc}\"\nrpc_secret_file = \"{secret}\"\n\
                 [s3_api]\napi_bind_addr = \"{host}:{s3}\"\ns3_region = \"garage\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                meta = root.join("meta").display(),
                data = root.join("data").display(),
                secret = secret_file.display(),
            ),
        )
        .unwrap();
        let mut garage = ObjectServer {
            server: server.clone(),
            data: root.join("data"),
            region: "garage",
            conf,
            log: dir.join("garage.log"),
            host: host.to_owned(),
            s3_port: s3,
            key_id: format!("GK{}", hex(24)),
            secret: hex(64),
            bucket: "chaos".to_owned(),
            proc: None,
        };
        garage.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !garage.cli_ok(&["status"]) {
            assert!(Instant::now() < deadline, "garage never answered `status`");
            std::thread::sleep(Duration::from_millis(200));
        }
        let node = garage.cli(&["node", "id", "-q"]);
        let node = &node.trim()[..16];
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = (garage.key_id.clone(), garage.secret.clone());
        garage.cli(&["key", "import", "--yes", "-n", "chaos", &key_id, &secret]);
        garage.cli(&["bucket", "create", "chaos"]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", "chaos", "--key", &key_id,
        ]);
        wait_port(host, s3, "garage S3", Duration::from_secs(30));
        garage
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(self.server.binary());
        match self.server {
            S3Server::Garage(_) => command
                .env("GARAGE_CONFIG_FILE", &self.conf)
                .env("RUST_LOG", "garage=warn")
                .arg("server"),
            S3Server::RustFs(_) => command
                .env("RUSTFS_ACCESS_KEY", &self.key_id)
                .env("RUSTFS_SECRET_KEY", &self.secret)
                .env("RUSTFS_CONSOLE_ENABLE", "false")
                .env("RUSTFS_OBS_LOGGER_LEVEL", "warn")
                .arg("server")
                .arg("--address")
                .arg(format!("{}:{}", self.host, self.s3_port))
                .arg("--region")
                .arg(self.region)
                .arg(&self.data),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
    }

    fn cli_ok(&self, args: &[&str]) -> bool {
        Command::new(self.server.binary())
            .env("GARAGE_CONFIG_FILE", &self.conf)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(self.server.binary())
            .env("GARAGE_CONFIG_FILE", &self.conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.s3_port)
    }

    /// Stops the server (SIGTERM) and leaves it stopped.
    pub(crate) fn stop(&mut self) {
        if let Some(proc) = self.proc.take() {
            terminate(&proc);
        }
    }

    /// Starts it again on the same data.
    pub(crate) fn start_again(&mut self) {
        self.spawn();
        wait_port(
            &self.host,
            self.s3_port,
            "the S3 server",
            Duration::from_secs(60),
        );
    }

    pub(crate) fn target(&self) -> stella_config::S3Target {
        stella_config::S3Target {
            endpoint: self.endpoint(),
            bucket: self.bucket.clone(),
            region: self.region.into(),
            access_key_id: self.key_id.clone(),
            secret_access_key: stella_config::Secret::new(self.secret.clone()),
            prefix: String::new(),
            part_size_bytes: 5 * 1024 * 1024,
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Makes `dir` and its parents down to the temp dir traversable by the `postgres` user.
pub(crate) fn open_for_postgres(dir: &Path) {
    set_mode(dir, 0o755);
}

/// The services' python (`$STELLA_TEST_WEBHOOK_PYTHON`: aiosmtpd and standardwebhooks).
pub(crate) fn python() -> String {
    std::env::var("STELLA_TEST_WEBHOOK_PYTHON")
        .expect("STELLA_TEST_WEBHOOK_PYTHON must be set (by ops/services.sh up)")
}

fn ops(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ops")
        .join(script)
}

/// `ops/smtp_sink.py` on the bridge's address, into a Maildir of the run's own.
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    pub(crate) maildir: PathBuf,
    _proc: Proc,
}

impl SmtpSink {
    pub(crate) fn start(dir: &Path, host: &str) -> SmtpSink {
        let maildir = dir.join("mail");
        let port = free_port();
        let log = std::fs::File::create(dir.join("smtp-sink.log")).unwrap();
        let child = Command::new(python())
            .arg("-u")
            .arg(ops("smtp_sink.py"))
            .args(["--host", host, "--port", &port.to_string(), "--maildir"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let proc = Proc(child);
        wait_port(host, port, "smtp sink", Duration::from_secs(30));
        SmtpSink {
            port,
            maildir,
            _proc: proc,
        }
    }
}

/// `ops/webhook_receiver.py` on the bridge's address: verifies every signature with
/// the `standardwebhooks` package and logs each attempt.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    _proc: Proc,
}

impl Receiver {
    pub(crate) fn start(
        dir: &Path,
        host: &str,
        secret: &str,
        script: &serde_json::Value,
    ) -> Receiver {
        let log = dir.join("webhook-attempts.jsonl");
        let mut child = Command::new(python())
            .arg("-u")
            .arg(ops("webhook_receiver.py"))
            .arg("--log")
            .arg(&log)
            .args(["--secret", secret, "--host", host, "--port", "0"])
            .arg("--script")
            .arg(script.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .nth(2)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the webhook receiver said {line:?}"));
        Receiver {
            port,
            log,
            _proc: Proc(child),
        }
    }

    /// Every attempt so far, as logged.
    pub(crate) fn attempts(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
