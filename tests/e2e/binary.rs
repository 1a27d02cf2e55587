//! The real `stella` binary, as a user runs it: a clean environment, signals, exit codes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn stella(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stella"));
    command
        .env_clear()
        .current_dir(dir)
        .env("STELLA_DATA_DIR", dir.join("data"))
        .env("STELLA_LISTEN", "127.0.0.1:0")
        .env("STELLA_DATABASE_CONNECT_TIMEOUT_SECS", "2")
        .stdin(Stdio::null());
    command
}

/// Asserts the run failed the way an operator can act on: non-zero, one `error:` line
/// naming what is wrong, no panic.
fn assert_one_line_error(output: &Output, must_contain: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "expected failure, stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<_> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for needle in must_contain {
        assert!(
            errors[0].contains(needle),
            "{needle:?} missing from {:?}",
            errors[0]
        );
    }
    errors[0].to_string()
}

/// Waits for the "serving" log line and returns the bound address.
fn wait_for_addr(child: &mut Child) -> String {
    wait_for_logged_addr(child, "stella is serving")
}

/// Waits for the log line containing `needle` and returns its `addr=` field.
fn wait_for_logged_addr(child: &mut Child, needle: &str) -> String {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains(needle) {
            let addr = line.split("addr=").nth(1).unwrap().trim().to_owned();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return addr;
        }
    }
    let _ = child.kill();
    panic!("the process did not log {needle:?} with its address");
}

#[test]
fn serve_runs_with_no_settings_and_exits_zero_on_sigterm_within_10s() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = stella(dir.path())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut child);
    let ready = reqwest::blocking::get(format!("http://{addr}/readyz")).unwrap();
    assert_eq!(ready.status(), 200);

    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("stella serve was still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    // The first start saved the admin token privately and said where; stdout is a pipe
    // here (a log), so the secret itself is not in it.
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let data = dir.path().join("data");
    let saved = std::fs::read_to_string(data.join("admin-token")).unwrap();
    assert!(!stdout.contains(saved.trim()), "{stdout}");
    assert!(
        stdout.contains(&data.join("admin-token").display().to_string()),
        "{stdout}"
    );
    // And where the console is.
    assert!(
        stdout.contains(&format!("console: http://{addr}/console")),
        "{stdout}"
    );
    // Everything in the data dir is private to the server's user.
    let mode = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for folder in ["objects", "objects/.tmp"] {
        assert_eq!(mode(&data.join(folder)), 0o700, "{folder}");
    }
    for file in [
        "stella.db",
        "stella.db-wal",
        "stella.db-shm",
        "admin-token",
        "signing-key.pem",
    ] {
        if file.starts_with("stella.db-") && !data.join(file).exists() {
            continue; // SQLite removes them on a clean close
        }
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
}

#[test]
fn malformed_config_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stella.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:8080\"\n[database\nurl = 1\n").unwrap();
    let output = stella(dir.path())
        .args(["--config", file.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_one_line_error(&output, &["stella.toml", "not valid TOML"]);

    std::fs::write(&file, "[s3]\nbuckett = \"x\"\n").unwrap();
    let output = stella(dir.path())
        .env("STELLA_CONFIG", &file)
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&output, &["unknown key `s3.buckett`", "stella.toml"]);
}

#[test]
fn bad_environment_value_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .env("STELLA_LISTEN", "localhost")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&output, &["`listen`", "STELLA_LISTEN"]);
}

#[test]
fn unreachable_database_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .env(
            "STELLA_DATABASE_URL",
            "postgres://stella:hunter2@127.0.0.1:1/stella",
        )
        .arg("serve")
        .output()
        .unwrap();
    let line = assert_one_line_error(
        &output,
        &[
            "PostgreSQL",
            "127.0.0.1:1",
            "database.url",
            "STELLA_DATABASE_URL",
        ],
    );
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn unreachable_valkey_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .env("STELLA_VALKEY_URL", "redis://127.0.0.1:1")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&output, &["Valkey", "valkey.url", "STELLA_VALKEY_URL"]);
}

#[test]
fn wrong_s3_credential_is_one_clear_line() {
    let Some(target) = crate::common::s3_target() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .env("STELLA_S3_ENDPOINT", &target.endpoint)
        .env("STELLA_S3_BUCKET", &target.bucket)
        .env("STELLA_S3_REGION", &target.region)
        .env("STELLA_S3_ACCESS_KEY_ID", &target.access_key_id)
        .env("STELLA_S3_SECRET_ACCESS_KEY", "not-the-right-secret")
        .arg("serve")
        .output()
        .unwrap();
    let line = assert_one_line_error(
        &output,
        &[
            "access denied",
            "s3.secret_access_key",
            "STELLA_S3_SECRET_ACCESS_KEY",
        ],
    );
    assert!(!line.contains("not-the-right-secret"), "{line}");
}

#[test]
fn config_show_redacts_secrets_and_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stella.toml");
    std::fs::write(&file, "[s3]\nregion = \"garage\"\n").unwrap();
    let output = stella(dir.path())
        .env("STELLA_BOOTSTRAP_TOKEN", "super-secret-bootstrap")
        .env("STELLA_DATABASE_URL", "postgres://stella:hunter2@db/stella")
        .args(["--config", file.to_str().unwrap(), "config", "show"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("super-secret-bootstrap"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("{key} missing: {text}"))
            .to_owned()
    };
    assert!(line("bootstrap_token").contains("[redacted]"));
    assert!(line("bootstrap_token").ends_with("# environment variable STELLA_BOOTSTRAP_TOKEN"));
    assert!(line("s3.region").contains("\"garage\""));
    assert!(line("s3.region").contains(&format!("# file {}", file.display())));
    assert!(line("log").ends_with("# default"));
    assert!(line("listen").ends_with("# environment variable STELLA_LISTEN"));

    let json = stella(dir.path())
        .args(["config", "show", "--output", "json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["key"] == "data_dir"));
}

#[test]
fn migrate_creates_and_reports_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let output = stella(dir.path()).arg("migrate").output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let migrations = std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/store/migrations/sqlite"
        ))
        .unwrap()
        .count();
        assert!(
            text.contains(&format!(
                "database (SQLite) is at schema version {migrations}"
            )),
            "{text}"
        );
    }
    assert!(dir.path().join("data/stella.db").is_file());
}

#[test]
fn bench_mailbox_reports_the_runtime_against_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench",
            "mailbox",
            "--backend",
            "embedded",
            "--messages",
            "500",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["backend"], "embedded");
    assert_eq!(report["messages"], 500);
    // Every message went through the runtime and was acknowledged (the command waits for
    // that); the figures are reported, never judged, here.
    for key in ["msgs_per_sec", "baseline_msgs_per_sec", "ratio"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
}

#[test]
fn bench_mailbox_on_valkey_without_a_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench",
            "mailbox",
            "--backend",
            "valkey",
            "--messages",
            "10",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&output, &["STELLA_VALKEY_URL"]);
}

#[test]
fn bench_jobs_runs_durable_jobs_to_completion_and_reports_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench",
            "jobs",
            "--jobs",
            "200",
            "--tenants",
            "4",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["store"], "sqlite");
    assert_eq!(report["jobs"], 200);
    for key in ["jobs_per_sec", "baseline_commits_per_sec", "ratio"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
}

#[test]
fn bench_notify_accounts_for_every_event_once_and_reports_each_round() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench",
            "notify",
            "--events",
            "200",
            "--rounds",
            "1",
            "--burst-events",
            "300",
            "--burst-tenants",
            "5",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["store"], "SQLite", "{report}");
    assert_eq!(report["events"], 200);
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1, "{report}");
    for key in ["stella_per_sec", "raw_per_sec", "ratio"] {
        assert!(rounds[0][key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    // The burst: every event reached the receiver, alone or inside a digest, and none
    // twice (how many went into digests depends on the machine's speed).
    let burst = &report["burst"];
    assert_eq!(burst["events"], 300, "{report}");
    assert_eq!(burst["tenants"], 5);
    assert_eq!(burst["accounted"], 300, "{report}");
    assert_eq!(burst["duplicates"], 0, "{report}");
    assert_eq!(
        burst["alone"].as_u64().unwrap() + burst["digested"].as_u64().unwrap(),
        300,
        "{report}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "the benchmark uses its own data folder"
    );
}

/// The README's walk-through, with the real binary: start the server, create a tenant and
/// a token with the CLI, run and list jobs, read the actor tree; and the exit codes
/// scripts rely on.
#[test]
fn cli_manages_tenants_tokens_and_jobs_with_reliable_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = stella(dir.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut server);
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let cli = |token: &str, args: &[&str]| {
        let output = stella(dir.path())
            .env("STELLA_SERVER", format!("http://{addr}"))
            .env("STELLA_TOKEN", token)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        (output.status.code(), stdout, stderr)
    };

    let (code, out, err) = cli(
        &admin,
        &["tenants", "create", "acme", "--name", "Acme Corp"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("acme") && out.contains("Acme Corp"), "{out}");
    let (code, out, err) = cli(
        &admin,
        &[
            "tokens",
            "create",
            "--for-tenant",
            "acme",
            "--name",
            "ci",
            "--scopes",
            "jobs:read,jobs:write",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();

    // The diagnostic kind is for administrators (a tenant token is refused, exit 3).
    let (code, _, err) = cli(&token, &["jobs", "submit", "--kind", "noop"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, out, err) = cli(
        &admin,
        &[
            "--tenant", "acme", "jobs", "submit", "--kind", "noop", "--wait", "--output", "json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let job: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "succeeded");
    let (code, out, _) = cli(&token, &["jobs", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(
        out.contains(job["id"].as_str().unwrap()) && out.contains("succeeded"),
        "{out}"
    );
    let (code, out, _) = cli(&admin, &["actors"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("root"), "{out}");

    // Exit codes: 3 for a bad token or a missing scope, 4 for not found, 5 for a conflict,
    // 6 for invalid input, 7 when the server cannot be reached.
    let (code, _, err) = cli("stella_wrong", &["jobs", "list"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.starts_with("error: 401"), "{err}");
    let (code, _, err) = cli(&token, &["tenants", "list"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, _, err) = cli(
        &token,
        &["jobs", "get", "job_0190f5b2c3d47e8f9a0b1c2d3e4f5a6b"],
    );
    assert_eq!(code, Some(4), "{err}");
    let (code, _, _) = cli(&admin, &["tenants", "create", "acme", "--name", "again"]);
    assert_eq!(code, Some(5));
    let (code, _, err) = cli(&admin, &["tenants", "create", "Bad Id", "--name", "x"]);
    assert_eq!(code, Some(6), "{err}");
    let output = stella(dir.path())
        .env("STELLA_SERVER", "http://127.0.0.1:9")
        .env("STELLA_TOKEN", &admin)
        .args(["tenants", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));

    // Advisories: a folder of records imports under a source named after it.
    let folder = dir.path().join("advisories");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("GO-1.json"),
        r#"{"id": "GO-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Go", "name": "example.com/m"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]}]}"#,
    )
    .unwrap();
    let (code, out, err) = cli(
        &admin,
        &[
            "advisories",
            "import",
            folder.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["source"].as_str(), report["new"].as_u64()),
        (Some("osv:advisories"), Some(1))
    );
    std::fs::write(folder.join("bad.json"), "{").unwrap();
    let (code, _, err) = cli(&admin, &["advisories", "import", folder.to_str().unwrap()]);
    assert_eq!(code, Some(6), "{err}");

    // An attestation signed with the server's key verifies against its published keys
    // (no token needed) and against the key file; one flipped byte fails.
    let pem = std::fs::read_to_string(dir.path().join("data/signing-key.pem")).unwrap();
    let key = stella_domain::dsse::SigningKey::from_file_string(&pem).unwrap();
    let statement =
        stella_domain::intoto::Statement::builder("https://stella.dev/attestations/verdict/v1")
            .subject(
                "sbom.json",
                &stella_domain::canonical::Digest::sha256(b"sbom"),
            )
            .predicate(serde_json::json!({"verdict": {"disposition": "pass"}}))
            .build()
            .unwrap();
    let envelope = statement.sign(&key).to_json();
    let file = dir.path().join("attestation.json");
    std::fs::write(&file, &envelope).unwrap();
    let (code, out, err) = cli("", &["verify", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(key.key_id()) && out.contains("disposition pass"),
        "{out}"
    );
    let public = dir.path().join("public.pem");
    std::fs::write(&public, key.public_key().to_pem()).unwrap();
    let output = stella(dir.path())
        .args([
            "verify",
            file.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ])
        .env("STELLA_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut tampered: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    let sig = tampered["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut chars: Vec<char> = sig.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    tampered["signatures"][0]["sig"] = flipped.into();
    std::fs::write(&file, tampered.to_string()).unwrap();
    let (code, _, err) = cli("", &["verify", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("verification failed"), "{err}");

    let (code, out, _) = cli("", &["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("tenants") && out.contains("dead-letters"),
        "completion script"
    );

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

/// Runs `command` with stdout a pipe whose reader is already gone, as `stella … | head`
/// is once `head` has read its lines and exited.
fn run_with_closed_stdout(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// A `stella serve` on a fresh data folder, and a client command line against it with
/// the administrator token.
/// Takes `file` live as tenant acme's policy from the command line with two identities:
/// the administrator drafts and submits it, an approver token approves and activates it.
/// `run` runs the CLI as the administrator (`--token` switches identity). Returns the
/// activation's output (a table).
type Run<'a> = &'a dyn Fn(&[&str]) -> (Option<i32>, String, String);

fn policy_goes_live(run: Run<'_>, file: &str) -> String {
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    let draft: serde_json::Value = serde_json::from_str(&ok(&[
        "--tenant", "acme", "--output", "json", "policy", "draft", file,
    ]))
    .unwrap();
    let version = draft["version"].to_string();
    ok(&["--tenant", "acme", "policy", "submit", &version]);
    let approver: serde_json::Value = serde_json::from_str(&ok(&[
        "--output",
        "json",
        "tokens",
        "create",
        "--for-tenant",
        "acme",
        "--name",
        &format!("approver-{}", uuid::Uuid::new_v4().simple()),
        "--scopes",
        "policy:approve,policy:operate",
    ]))
    .unwrap();
    let token = approver["token"].as_str().unwrap();
    ok(&["--token", token, "policy", "approve", &version]);
    ok(&["--token", token, "policy", "activate", &version])
}

pub(crate) struct CliServer {
    pub(crate) dir: tempfile::TempDir,
    addr: String,
    admin: String,
    server: Child,
}

impl CliServer {
    pub(crate) fn start() -> Self {
        Self::start_with_config("")
    }

    /// A server reading `config` as its config file (`stella.toml` in its folder).
    pub(crate) fn start_with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stella.toml"), config).unwrap();
        let mut server = stella(dir.path())
            .env("STELLA_CONFIG", dir.path().join("stella.toml"))
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = wait_for_addr(&mut server);
        let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            dir,
            addr,
            admin,
            server,
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.command_as(&self.admin, args)
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The administrator token.
    pub(crate) fn admin(&self) -> &str {
        &self.admin
    }

    /// The server process's peak resident memory so far (`VmHWM`), in bytes.
    pub(crate) fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }

    /// A client command with `token` instead of the administrator's.
    pub(crate) fn command_as(&self, token: &str, args: &[&str]) -> Command {
        let mut command = stella(self.dir.path());
        command
            .env("STELLA_SERVER", format!("http://{}", self.addr))
            .env("STELLA_TOKEN", token)
            .args(args);
        command
    }

    /// Exit code, stdout, stderr.
    pub(crate) fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.run_as(&self.admin, args)
    }

    /// [`Self::run`] with `token`.
    pub(crate) fn run_as(&self, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let output = self.command_as(token, args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    }
}

impl Drop for CliServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn vex_import_takes_csaf_by_content_or_by_format_and_names_the_fault() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/vex/csaf");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let server = CliServer::start();
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let file = |name: &str| data.join(name).to_str().unwrap().to_owned();
    let out = server.ok(&[
        "--tenant",
        "acme",
        "--output",
        "json",
        "vex",
        "import",
        &file("2022-evd-uc-03-ms-001.json"),
    ]);
    let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["format"], "csaf", "{out}");
    assert_eq!(reply["statements"], 19, "{out}");
    assert_eq!(reply["without_component_identity"], 19, "{out}");
    let out = server.ok(&[
        "--tenant",
        "acme",
        "--output",
        "json",
        "vex",
        "import",
        "--format",
        "csaf",
        &file("rhsa-2022_0011.json"),
    ]);
    let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["format"], "csaf", "{out}");
    assert_eq!(reply["statements"], 15, "{out}");
    // A CycloneDX document named CSAF is refused where CSAF's required part is missing.
    let cdx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/vex/cyclonedx-cisa/Case-1_vex-fixed.json");
    let (code, _, err) = server.run(&[
        "--tenant",
        "acme",
        "vex",
        "import",
        "--format",
        "csaf",
        cdx.to_str().unwrap(),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("/document"), "{err}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_with_closed_stdout(stella(dir.path()).args(["completions", "bash"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    let server = CliServer::start();
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let advisories = server.dir.path().join("advisories");
    std::fs::create_dir(&advisories).unwrap();
    std::fs::write(
        advisories.join("NPM-1.json"),
        r#"{"id": "NPM-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9.0.0"}]}]}]}"#,
    )
    .unwrap();
    server.ok(&["advisories", "import", advisories.to_str().unwrap()]);
    let sbom = server.dir.path().join("app.json");
    std::fs::write(&sbom, crate::scans::tiny_sbom()).unwrap();
    let scan = ["--tenant", "acme", "scan", sbom.to_str().unwrap(), "--wait"];
    let out = server.ok(&scan);
    assert!(out.contains("NPM-1"), "{out}");

    let output = run_with_closed_stdout(&mut server.command(&scan));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A blocked scan still exits 1 when nobody reads its output: a CI gate piping the
    // verdict into `head` must not pass.
    let policy = server.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "name = \"strict\"\nversion = 1\ndefault = \"block\"\nrules = []\n",
    )
    .unwrap();
    policy_goes_live(&|args| server.run(args), policy.to_str().unwrap());
    let output = run_with_closed_stdout(&mut server.command(&scan));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blocked by the policy"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn tables_cut_wide_cells_and_escape_what_a_terminal_would_act_on() {
    let server = CliServer::start();
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    // One import of 2,000 advisories: its `advisory.delta` payload is far wider than
    // the 65,535 columns `format!` can pad to.
    let records: Vec<serde_json::Value> = (0..2000)
        .map(|i| {
            serde_json::json!({
                "id": format!("GO-2024-{i:04}"), "modified": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "Go", "name": format!("example.com/org/module-{i:04}")},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}]}]
            })
        })
        .collect();
    let file = server.dir.path().join("many.json");
    std::fs::write(&file, serde_json::to_vec(&records).unwrap()).unwrap();
    server.ok(&["advisories", "import", file.to_str().unwrap()]);
    let (code, out, err) = server.run(&["--tenant", "acme", "events"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let delta = out
        .lines()
        .find(|l| l.contains("advisory.delta"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(delta.ends_with('…'), "{delta}");
    assert!(delta.chars().count() < 300, "{delta}");
    // JSON output keeps the whole payload.
    let out = server.ok(&["--tenant", "acme", "--output", "json", "events"]);
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    let delta = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "advisory.delta")
        .unwrap();
    assert_eq!(
        delta["payload"]["advisories"].as_array().unwrap().len(),
        2000
    );

    // A name that clears the screen, colours the line and reverses what follows.
    let hostile = "\u{1b}[2J\u{1b}[31mred\u{202e}txt.exe\u{9b}0m";
    server.ok(&["tenants", "create", "evil", "--name", hostile]);
    let out = server.ok(&["tenants", "list"]);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{202e}') && !out.contains('\u{9b}'),
        "{out:?}"
    );
    assert!(
        out.contains("\\u{1b}[2J\\u{1b}[31mred\\u{202e}txt.exe\\u{9b}0m"),
        "{out}"
    );
    let out = server.ok(&["--output", "json", "tenants", "get", "evil"]);
    let tenant: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tenant["name"], hostile, "JSON output is untouched");
    // The server's error text, which may quote what it was sent, is escaped too.
    let (code, _, err) = server.run(&["tenants", "get", "\u{1b}[2Jx"]);
    assert!(matches!(code, Some(4 | 6)), "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains('\u{1b}'),
        "{err:?}"
    );
}

#[test]
fn errors_are_json_when_json_output_was_asked_for() {
    let server = CliServer::start();
    let (code, out, err) = server.run(&["--output", "json", "tenants", "get", "nope"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(out.is_empty(), "{out}");
    let error: serde_json::Value =
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(error["error"]["status"], 404, "{error}");
    assert_eq!(error["error"]["type"], "urn:stella:problem:not-found");
    assert_eq!(error["error"]["exit_code"], 4);
    assert!(error["error"]["request_id"].is_string(), "{error}");
    assert!(error["error"]["detail"].as_str().unwrap().contains("nope"));
    // The same failure in a table is the usual line, with the same exit code.
    let (code, _, err) = server.run(&["tenants", "get", "nope"]);
    assert_eq!(code, Some(4));
    assert!(err.starts_with("error: 404"), "{err}");

    let (code, _, err) = server.run(&[
        "--output", "json", "tenants", "create", "Bad Id", "--name", "x",
    ]);
    assert_eq!(code, Some(6), "{err}");
    let error: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert_eq!(error["error"]["status"], 400, "{error}");

    let output = stella(server.dir.path())
        .env("STELLA_SERVER", "http://127.0.0.1:9")
        .env("STELLA_OUTPUT", "json")
        .args(["tenants", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{error}"
    );
    assert_eq!(error["error"]["exit_code"], 7);

    // A command line clap refuses is exit code 2 either way.
    let (code, _, err) = server.run(&["--output", "json", "jobs", "list", "--limit", "lots"]);
    assert_eq!(code, Some(2), "{err}");
    let error: serde_json::Value =
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--limit"),
        "{error}"
    );
    assert_eq!(error["error"]["exit_code"], 2);
}

#[test]
fn every_number_on_the_command_line_is_range_checked() {
    let dir = tempfile::tempdir().unwrap();
    let u64_max = u64::MAX.to_string();
    let token = ["tokens", "create", "--name", "ci", "--scopes", "admin"];
    let cases: Vec<Vec<&str>> = vec![
        [&token[..], &["--expires-in-days", "100000000"]].concat(),
        [&token[..], &["--expires-in-days", "0"]].concat(),
        vec!["jobs", "list", "--limit", "0"],
        vec!["jobs", "list", "--limit", "501"],
        vec!["jobs", "submit", "--kind", "noop", "--max-attempts", "0"],
        vec!["jobs", "wait", "job_x", "--timeout-secs", &u64_max],
        vec!["scan", "sbom.json", "--wait", "--timeout-secs", "0"],
        vec![
            "schedules",
            "create",
            "n",
            "--cron",
            "@daily",
            "--jitter-seconds=-1",
        ],
        vec![
            "schedules",
            "create",
            "n",
            "--cron",
            "@daily",
            "--jitter-seconds",
            "3601",
        ],
        vec!["diag", "noop", "--sleep-ms", &u64_max],
        vec!["diag", "noop", "--tenants", "0"],
        vec![
            "bench",
            "match",
            "--sbom",
            "s",
            "--advisories",
            "a",
            "--runs",
            "0",
        ],
        vec!["bench", "scheduler", "--impacted-percent", "NaN"],
    ];
    for args in cases {
        let output = stella(dir.path())
            .env("STELLA_SERVER", "http://127.0.0.1:9")
            .env("STELLA_TOKEN", "stella_x")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid value") && stderr.contains("is not in"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bench_match_reports_the_index_against_the_linear_baseline_on_real_data() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench", "match", "--runs", "3", "--output", "json", "--sbom",
        ])
        .arg(data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
        .arg("--advisories")
        .arg(data.join("advisories/Go-all.zip"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["components"], 202);
    assert_eq!(report["advisories"], 4291);
    assert_eq!(report["findings"], 58);
    assert_eq!(report["runs"], 3);
    for key in [
        "index_build_seconds",
        "matches_per_sec",
        "baseline_matches_per_sec",
        "ratio",
        "evaluate_p50_ms",
        "evaluate_p99_ms",
    ] {
        assert!(report[key].as_f64().is_some(), "{key}: {report}");
    }
}

#[test]
fn scan_gates_a_pipeline_with_its_exit_code_and_the_attestation_verifies() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = stella(dir.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut server);
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let cli = |args: &[&str]| {
        let output = stella(dir.path())
            .env("STELLA_SERVER", format!("http://{addr}"))
            .env("STELLA_TOKEN", &admin)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        (output.status.code(), stdout, stderr)
    };
    let sbom = data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json");
    let sbom = sbom.to_str().unwrap();
    let (code, _, err) = cli(&["tenants", "create", "acme", "--name", "Acme"]);
    assert_eq!(code, Some(0), "{err}");
    let go = data.join("advisories/Go-all.zip");
    let (code, out, err) = cli(&["advisories", "import", go.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("4291"), "{out}");

    // Warnings only: exit 0, with the summary and the findings table.
    let (code, out, err) = cli(&["--tenant", "acme", "scan", sbom, "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("disposition    warn"), "{out}");
    assert!(out.contains("GO-2022-1031"), "{out}");
    let scan_id = out
        .lines()
        .find_map(|l| l.strip_prefix("scan "))
        .unwrap()
        .trim()
        .to_owned();

    // The attestation, byte for byte, verifies against the server's keys.
    let file = dir.path().join("verdict.dsse.json");
    let (code, _, err) = cli(&[
        "--tenant",
        "acme",
        "scans",
        "attestation",
        &scan_id,
        "--output-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(&["verify", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("verified") && out.contains("disposition warn"),
        "{out}"
    );

    // The scan's findings exported as CSV: a profile, a run waited for, a download checked
    // against the listed digest, and a partial download resumed to the same bytes.
    let (code, out, err) = cli(&[
        "--tenant", "acme", "export", "profiles", "create", "bridge", "--scans", &scan_id,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("bridge") && out.contains("csv"), "{out}");
    let (code, out, err) = cli(&["--tenant", "acme", "export", "run", "bridge", "--wait"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("findings.csv") && out.contains("export.json.dsse"),
        "{out}"
    );
    assert!(err.contains("completed"), "{err}");
    let (code, out, err) = cli(&[
        "--tenant", "acme", "--output", "json", "export", "run", "bridge", "--wait",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let export: serde_json::Value = serde_json::from_str(&out).unwrap();
    let export_id = export["export_id"].as_str().unwrap().to_owned();
    let csv = dir.path().join("findings.csv");
    let download = |resume: bool| {
        let mut args = vec![
            "--tenant",
            "acme",
            "export",
            "download",
            &export_id,
            "findings.csv",
            "--output-file",
            csv.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        cli(&args)
    };
    let (code, _, err) = download(false);
    assert_eq!(code, Some(0), "{err}");
    let whole = std::fs::read(&csv).unwrap();
    assert!(String::from_utf8_lossy(&whole).contains("GO-2022-1031"));
    std::fs::write(&csv, &whole[..whole.len() / 3]).unwrap();
    let (code, _, err) = download(true);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&csv).unwrap(), whole);
    // A file that does not match the listed digest is an error, not a download.
    let mut wrong = whole.clone();
    wrong[0] ^= 1;
    std::fs::write(&csv, &wrong).unwrap();
    let (code, _, err) = download(true);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not match"), "{err}");
    // The runs listed (two completed, every item done); a completed run cannot be
    // cancelled.
    let (code, out, err) = cli(&[
        "--tenant",
        "acme",
        "--output",
        "json",
        "export",
        "list",
        "--status",
        "completed",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let runs = runs["items"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{out}");
    assert!(
        runs.iter().all(|r| r["items_done"] == r["items_total"]
            && r["profile"] == "bridge"
            && r["step"] == "distribute"),
        "{out}"
    );
    let (code, _, err) = cli(&["--tenant", "acme", "export", "cancel", &export_id]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("already succeeded"), "{err}");

    // A policy that blocks gin: the same scan now exits 1.
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "name = \"strict\"\nversion = 1\ndefault = \"warn\"\n\n[[rules]]\nid = \"no-gin\"\nwhen = { packages = [\"pkg:golang/github.com/gin-gonic/gin\"] }\noutcome = \"block\"\nbecause = \"banned\"\n",
    )
    .unwrap();
    let out = policy_goes_live(&cli, policy.to_str().unwrap());
    assert!(out.contains("VERSION") && out.contains("active"), "{out}");
    let (code, out, err) = cli(&["--tenant", "acme", "scan", sbom, "--wait"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("disposition    block"), "{out}");
    assert!(err.contains("blocked by the policy"), "{err}");

    // A malformed SBOM is exit 6 with the pointer.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"type": "library"}]}"#,
    )
    .unwrap();
    let (code, _, err) = cli(&["--tenant", "acme", "scan", bad.to_str().unwrap()]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("/components/0/name"), "{err}");
    let _ = server.kill();
}

#[test]
fn bench_scan_reports_end_to_end_against_the_in_process_scan() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args(["bench", "scan", "--runs", "3", "--output", "json", "--sbom"])
        .arg(data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
        .arg("--advisories")
        .arg(data.join("advisories/Go-all.zip"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["findings"], 58, "{report}");
    assert_eq!(report["runs"], 3);
    for key in [
        "p50_ms",
        "p99_ms",
        "baseline_p50_ms",
        "baseline_p99_ms",
        "ratio",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {report}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "the benchmark uses its own data folder"
    );
}

#[test]
fn bench_export_measures_each_run_in_a_worker_of_its_own() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args([
            "bench",
            "export",
            "--kinds",
            "csv,evidence",
            "--rounds",
            "2",
        ])
        .args(["--output", "json", "--sbom"])
        .arg(data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json"))
        .arg("--advisories")
        .arg(data.join("advisories/Go-all.zip"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["findings"], 58, "{report}");
    assert_eq!(report["rounds"], 2, "{report}");
    assert_eq!(report["serde"].as_array().unwrap().len(), 2, "{report}");
    let runs = report["kinds"].as_array().unwrap();
    // Every run, the kinds interleaved round by round.
    let order: Vec<(String, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["round"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("csv", 1), ("evidence", 1), ("csv", 2), ("evidence", 2)]
            .map(|(k, r)| (k.to_owned(), r))
            .to_vec()
    );
    for run in runs {
        for key in ["seconds", "bytes", "worker_peak_rss_mb", "zstd_mb_per_sec"] {
            assert!(run[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {run}");
        }
        assert!(run["worker_cpu_seconds"].as_f64().is_some(), "{run}");
        assert!(run["worker_rss_before_mb"].as_f64().is_some(), "{run}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "the benchmark uses its own data folder"
    );
}

/// Targets, schedules and runs with the CLI against a real server: a scan registers its
/// target, a bad cron is one clear error line, a schedule runs on demand and its run
/// re-scans the target.
#[test]
fn cli_manages_targets_schedules_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = stella(dir.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut server);
    let admin = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let cli = |args: &[&str]| {
        stella(dir.path())
            .env("STELLA_SERVER", format!("http://{addr}"))
            .env("STELLA_TOKEN", &admin)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let output = cli(args);
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let sbom = dir.path().join("app.json");
    std::fs::write(&sbom, crate::scans::tiny_sbom()).unwrap();
    let out = ok(&[
        "--tenant",
        "acme",
        "scan",
        sbom.to_str().unwrap(),
        "--target",
        "web",
        "--wait",
    ]);
    assert!(out.contains("disposition"), "{out}");
    let out = ok(&["--tenant", "acme", "targets", "list"]);
    assert!(out.contains("web"), "{out}");

    let bad = cli(&[
        "--tenant",
        "acme",
        "schedules",
        "create",
        "nightly",
        "--cron",
        "61 * * * *",
    ]);
    assert_one_line_error(&bad, &["minute field", "61", "0-59"]);
    let out = ok(&[
        "--tenant",
        "acme",
        "--output",
        "json",
        "schedules",
        "create",
        "nightly",
        "--cron",
        "0 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--jitter-seconds",
        "0",
    ]);
    let schedule: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schedule["timezone"], "Europe/Berlin");
    assert!(schedule["next_fire_at"].is_string(), "{schedule}");
    let out = ok(&["--tenant", "acme", "schedules", "list"]);
    assert!(
        out.contains("nightly") && out.contains("0 2 * * *"),
        "{out}"
    );

    let out = ok(&[
        "--tenant",
        "acme",
        "--output",
        "json",
        "schedules",
        "run",
        "nightly",
    ]);
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    let run_id = run["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let out = ok(&[
            "--tenant", "acme", "--output", "json", "runs", "get", &run_id,
        ]);
        let run: serde_json::Value = serde_json::from_str(&out).unwrap();
        if run["state"] == "completed" {
            break run;
        }
        assert!(Instant::now() < deadline, "run never completed: {run}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["trigger"], "manual");
    assert_eq!(done["results"][0]["target_name"], "web");
    assert_eq!(done["results"][0]["state"], "completed");
    let out = ok(&[
        "--tenant",
        "acme",
        "runs",
        "list",
        "--schedule",
        schedule["id"].as_str().unwrap(),
    ]);
    assert!(out.contains(&run_id) && out.contains("manual"), "{out}");
    // By name, as `schedules run` takes it.
    let out = ok(&["--tenant", "acme", "runs", "list", "--schedule", "nightly"]);
    assert!(out.contains(&run_id) && out.contains("manual"), "{out}");
    let missing = cli(&["--tenant", "acme", "runs", "list", "--schedule", "weekly"]);
    assert_eq!(missing.status.code(), Some(4));
    let out = ok(&["--tenant", "acme", "schedules", "pause", "nightly"]);
    assert!(out.contains("false"), "{out}");

    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
}

#[test]
fn bench_scheduler_reports_both_targets_against_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let output = stella(dir.path())
        .args(["bench", "scheduler", "--tenants", "200", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["store"], "sqlite");
    assert_eq!(report["fired_runs"], 200);
    assert_eq!(report["queued_runs"], 200);
    assert_eq!(report["impacted_targets"], 2);
    assert_eq!(
        report["drift_runs"], 2,
        "one run per impacted tenant: {report}"
    );
    for key in [
        "fire_seconds",
        "fire_baseline_seconds",
        "fire_ratio",
        "drift_enqueue_seconds",
        "drift_ratio",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
}

/// The export kinds this version writes, each run from the CLI below.
const EXPORT_KINDS: &[&str] = &[
    "csv",
    "sarif",
    "json:raw",
    "json:policy",
    "cyclonedx",
    "spdx",
    "report:pdf",
    "report:xlsx",
    "evidence",
    "mirror:full",
    "mirror:delta",
];

/// Every export kind end to end from the CLI, as a user runs it: a profile, a run waited
/// for, every file downloaded and checked against its listed SHA-256; on the embedded
/// default, and (with the services) on PostgreSQL + Valkey + S3. The mirror kinds select
/// no scans (they export every advisory and VEX document), and the delta runs since the
/// full one; the bundles check out with `stella export verify`.
fn every_export_kind_runs_from_the_cli(services: &[(&str, String)]) {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = stella(dir.path())
        .envs(services.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut server);
    let admin = "cli-export-admin-token-0123456789";
    let cli = |args: &[&str]| {
        let output = stella(dir.path())
            .env("STELLA_SERVER", format!("http://{addr}"))
            .env("STELLA_TOKEN", admin)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "stella {args:?}: {stderr}");
        stdout
    };
    let tenant = format!("cli{}", uuid::Uuid::new_v4().simple());
    let tenant = &tenant[..20];
    cli(&["tenants", "create", tenant, "--name", "CLI exports"]);
    let go = data.join("advisories/Go-all.zip");
    cli(&["advisories", "import", go.to_str().unwrap()]);
    let sbom = data.join("sboms/cyclonedx/proton-bridge_proton-bridge-v1.6.3.bom.json");
    let out = cli(&["--tenant", tenant, "scan", sbom.to_str().unwrap(), "--wait"]);
    let scan = out
        .lines()
        .find_map(|l| l.strip_prefix("scan "))
        .unwrap()
        .trim()
        .to_owned();
    let key = dir.path().join("stella.pub.pem");
    std::fs::write(&key, cli(&["keys", "--pem"])).unwrap();
    let mut mirror_full: Option<String> = None;
    for kind in EXPORT_KINDS {
        let profile = format!("every-{}", kind.replace(':', "-"));
        let mut create = vec![
            "--tenant", tenant, "export", "profiles", "create", &profile, "--kind", kind,
        ];
        if !kind.starts_with("mirror:") {
            create.extend(["--scans", &scan, "--include-sboms", "--include-evidence"]);
        }
        cli(&create);
        let mut run = vec![
            "--tenant", tenant, "--output", "json", "export", "run", &profile, "--wait",
        ];
        if *kind == "mirror:delta" {
            run.extend(["--base", mirror_full.as_deref().unwrap()]);
        }
        let out = cli(&run);
        let export: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(export["status"], "completed", "{kind}: {out}");
        let id = export["export_id"].as_str().unwrap();
        if *kind == "mirror:full" {
            mirror_full = Some(id.to_owned());
        }
        let files = export["files"].as_array().unwrap();
        assert!(
            files.iter().any(|f| f["name"] == "export.json")
                && files.iter().any(|f| f["name"] == "provenance.json.dsse"),
            "{kind}: {out}"
        );
        for file in files {
            let name = file["name"].as_str().unwrap();
            // Bundle members are named with a folder (`sboms/<sha256>.json`).
            let target = dir
                .path()
                .join(format!("{profile}-{}", name.replace('/', "_")));
            // `download` checks the bytes against the listed SHA-256 and fails otherwise.
            cli(&[
                "--tenant",
                tenant,
                "export",
                "download",
                id,
                name,
                "--output-file",
                target.to_str().unwrap(),
            ]);
            assert_eq!(
                std::fs::metadata(&target).unwrap().len(),
                file["size_bytes"].as_u64().unwrap(),
                "{kind}: {name}"
            );
        }
        let bundle = match *kind {
            "evidence" => Some(format!("evidence-{profile}-r1.tar.zst")),
            "mirror:full" | "mirror:delta" => Some("mirror.tar.zst".to_owned()),
            _ => None,
        };
        if let Some(bundle) = bundle {
            // The bundle checks out offline against the server's key.
            let bundle = dir.path().join(format!("{profile}-{bundle}"));
            let out = cli(&[
                "export",
                "verify",
                bundle.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ]);
            assert!(out.contains("signed by key"), "{out}");
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_mirror_bundle_goes_from_one_instance_to_another_with_no_server_there() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.is_dir() {
        println!("skipping: {} not found", data.display());
        return;
    }
    // A: the embedded default, serving; advisories in, a mirror:full out.
    let a = tempfile::tempdir().unwrap();
    let mut server = stella(a.path())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = wait_for_addr(&mut server);
    let admin = std::fs::read_to_string(a.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let cli = |args: &[&str]| {
        let output = stella(a.path())
            .env("STELLA_SERVER", format!("http://{addr}"))
            .env("STELLA_TOKEN", &admin)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (code, _, err) = cli(&["tenants", "create", "acme", "--name", "Acme"]);
    assert_eq!(code, Some(0), "{err}");
    let go = data.join("advisories/Go-all.zip");
    let (code, _, err) = cli(&["advisories", "import", go.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = cli(&[
        "--tenant",
        "acme",
        "export",
        "profiles",
        "create",
        "feeds",
        "--kind",
        "mirror:full",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("mirror:full"), "{out}");
    // A scan selector on a mirror profile is refused, naming the field.
    let (code, _, err) = cli(&[
        "--tenant",
        "acme",
        "export",
        "profiles",
        "create",
        "feeds",
        "--kind",
        "mirror:full",
        "--targets",
        "app",
    ]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("selectors.targets"), "{err}");
    let (code, out, err) = cli(&[
        "--tenant", "acme", "--output", "json", "export", "run", "feeds", "--wait",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let export: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(export["counts"]["advisories"], 4291, "{export}");
    let export_id = export["export_id"].as_str().unwrap().to_owned();
    let bundle = a.path().join("mirror.tar.zst");
    let (code, _, err) = cli(&[
        "--tenant",
        "acme",
        "export",
        "download",
        &export_id,
        "mirror.tar.zst",
        "--output-file",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let keys: serde_json::Value = reqwest::blocking::get(format!("http://{addr}/api/v1/keys"))
        .unwrap()
        .json()
        .unwrap();
    let pem = a.path().join("a.pem");
    std::fs::write(&pem, keys["items"][0]["public_key_pem"].as_str().unwrap()).unwrap();
    let _ = server.kill();
    let _ = server.wait();
    // The bundle checks out offline as every export does, with the one verifier.
    let verified = stella(a.path())
        .args(["export", "verify"])
        .arg(&bundle)
        .arg("--key")
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("mirror:full"),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // B: another data dir, no server, no network.
    let b = tempfile::tempdir().unwrap();
    let import = |bundle: &Path, trusted: Option<&Path>| {
        let mut command = stella(b.path());
        if let Some(pem) = trusted {
            command.env("STELLA_MIRROR_TRUSTED_KEYS", pem);
        }
        command
            .args(["mirror", "import"])
            .arg(bundle)
            .output()
            .unwrap()
    };
    let untrusted = import(&bundle, None);
    assert_one_line_error(&untrusted, &["mirror.trusted_keys"]);
    let output = import(&bundle, Some(&pem));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("imported") && stdout.contains("4291"),
        "{stdout}"
    );
    let again = import(&bundle, Some(&pem));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already-imported"));

    // One byte of a member changed: quarantined, the member named, exit non-zero.
    let mut files = crate::evidence::members(&std::fs::read(&bundle).unwrap());
    let member = &mut files
        .iter_mut()
        .find(|(n, _)| n == "advisories.jsonl")
        .unwrap()
        .1;
    let at = member.len() / 3;
    member[at] ^= 0x01;
    let tampered = b.path().join("tampered.tar.zst");
    std::fs::write(&tampered, crate::evidence::repack(&files)).unwrap();
    let refused = import(&tampered, Some(&pem));
    assert_one_line_error(&refused, &["quarantined", "advisories.jsonl", "checksum"]);
}

#[test]
fn every_export_kind_runs_from_the_cli_on_the_embedded_default() {
    every_export_kind_runs_from_the_cli(&[(
        "STELLA_BOOTSTRAP_TOKEN",
        "cli-export-admin-token-0123456789".to_owned(),
    )]);
}

#[test]
fn every_export_kind_runs_from_the_cli_on_the_services() {
    if std::env::var_os("STELLA_TEST_SERVICES").is_none() {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"));
    // A database of its own, dropped at the end.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(crate::common::postgres())
        .expect("the services' PostgreSQL");
    let database = db.url.clone();
    every_export_kind_runs_from_the_cli(&[
        (
            "STELLA_BOOTSTRAP_TOKEN",
            "cli-export-admin-token-0123456789".to_owned(),
        ),
        ("STELLA_DATABASE_URL", database),
        ("STELLA_DATABASE_MAX_CONNECTIONS", "6".to_owned()),
        ("STELLA_VALKEY_URL", var("STELLA_VALKEY_URL")),
        (
            "STELLA_VALKEY_KEY_PREFIX",
            format!("cli-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("STELLA_S3_ENDPOINT", var("STELLA_S3_ENDPOINT")),
        ("STELLA_S3_BUCKET", var("STELLA_S3_BUCKET")),
        ("STELLA_S3_REGION", var("STELLA_S3_REGION")),
        ("STELLA_S3_ACCESS_KEY_ID", var("STELLA_S3_ACCESS_KEY_ID")),
        (
            "STELLA_S3_SECRET_ACCESS_KEY",
            var("STELLA_S3_SECRET_ACCESS_KEY"),
        ),
        (
            "STELLA_S3_PREFIX",
            format!("cli-{}", uuid::Uuid::new_v4().simple()),
        ),
    ]);
    runtime.block_on(db.finish());
}

/// `stella export profiles create --destination`: the profile names a destination the
/// operator declared in the config file for `acme`; a run lands in its folder with the
/// listed digests. A name the tenant may not use fails with the API's 400, naming the
/// field; `config show` lists the destinations with their secret redacted.
#[test]
fn the_cli_sends_a_profile_to_a_destination_of_the_config_file() {
    let archive = tempfile::tempdir().unwrap();
    let config = format!(
        "[export.destinations.archive]\npath = {path:?}\nprefix = \"stella\"\ntenants = [\"acme\"]\n\n\
         [export.destinations.offsite]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\n\
         access_key_id = \"GK-OFFSITE\"\nsecret_access_key = \"hunter2-offsite\"\ntenants = [\"globex\"]\n",
        path = archive.path().to_str().unwrap()
    );
    let server = CliServer::start_with_config(&config);
    server.ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let sbom = server.dir.path().join("app.json");
    std::fs::write(&sbom, crate::scans::tiny_sbom()).unwrap();
    let out = server.ok(&["--tenant", "acme", "scan", sbom.to_str().unwrap(), "--wait"]);
    let scan_id = out
        .lines()
        .find_map(|l| l.strip_prefix("scan "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_owned();

    // globex's destination, for acme, is refused as if it did not exist.
    let (code, _, err) = server.run(&[
        "--tenant",
        "acme",
        "export",
        "profiles",
        "create",
        "offsite",
        "--scans",
        &scan_id,
        "--destination",
        "offsite",
    ]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("distribution.name"), "{err}");
    assert!(
        err.contains("is not an export destination of this tenant"),
        "{err}"
    );

    server.ok(&[
        "--tenant",
        "acme",
        "export",
        "profiles",
        "create",
        "archived",
        "--scans",
        &scan_id,
        "--destination",
        "archive",
        "--destination-prefix",
        "nightly",
    ]);
    let out = server.ok(&[
        "--tenant", "acme", "--output", "json", "export", "run", "archived", "--wait",
    ]);
    let export: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(export["status"], "completed", "{out}");
    let id = export["export_id"].as_str().unwrap();
    let files = export["files"].as_array().unwrap();
    assert!(!files.is_empty(), "{out}");
    let run_dir = archive.path().join(format!("stella/acme/nightly/{id}"));
    let mut landed: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    landed.sort();
    let mut listed: Vec<String> = files
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(landed, listed);
    for file in files {
        let bytes = std::fs::read(run_dir.join(file["name"].as_str().unwrap())).unwrap();
        use sha2::Digest as _;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            file["sha256"].as_str().unwrap()
        );
    }

    let output = stella(server.dir.path())
        .env("STELLA_CONFIG", server.dir.path().join("stella.toml"))
        .args(["config", "show"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("export.destinations.offsite.secret_access_key"),
        "{shown}"
    );
    assert!(
        shown.contains("export.destinations.archive.tenants"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2-offsite"), "{shown}");
}

/// The policy lifecycle and exceptions from the command line, with two people: alice
/// drafts, submits and requests; bob approves and activates. Neither can do the other's
/// part, and the exit codes say why.
#[test]
fn cli_takes_a_policy_live_and_waives_a_finding_with_two_identities() {
    let server = CliServer::start();
    let admin = server.admin.clone();
    let dir = &server.dir;
    let cli = |token: &str, args: &[&str]| server.run_as(token, args);
    let ok = |token: &str, args: &[&str]| {
        let (code, out, err) = cli(token, args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    let json = |token: &str, args: &[&str]| -> serde_json::Value {
        let args = [&["--output", "json"], args].concat();
        serde_json::from_str(&ok(token, &args)).unwrap()
    };
    ok(&admin, &["tenants", "create", "acme", "--name", "Acme"]);
    let token = |name: &str, scopes: &str| -> String {
        json(
            &admin,
            &[
                "tokens",
                "create",
                "--for-tenant",
                "acme",
                "--name",
                name,
                "--scopes",
                scopes,
            ],
        )["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let alice = token("alice", "policy:read,policy:author");
    let bob = token(
        "bob",
        "policy:read,policy:review,policy:approve,policy:operate",
    );

    let file = dir.path().join("strict.toml");
    std::fs::write(
        &file,
        "name = \"strict\"\nversion = 1\ndefault = \"block\"\nrules = []\n",
    )
    .unwrap();
    let draft = json(&alice, &["policy", "draft", file.to_str().unwrap()]);
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["version"], 1);
    // A draft cannot go live; alice cannot approve (no scope), bob cannot approve a
    // draft (its state).
    let (code, _, err) = cli(&bob, &["policy", "activate", "1"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("is draft"), "{err}");
    ok(
        &alice,
        &["policy", "submit", "1", "--reason", "stricter default"],
    );
    let (code, _, err) = cli(&alice, &["policy", "approve", "1"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, _, err) = cli(&bob, &["policy", "request-changes", "1"]);
    assert_eq!(code, Some(6), "a reason is required: {err}");
    assert!(err.contains("reason"), "{err}");
    ok(&bob, &["policy", "approve", "1", "--reason", "agreed"]);
    ok(&bob, &["policy", "activate", "1"]);
    let active = json(&alice, &["policy", "get"]);
    assert_eq!(
        (active["version"].clone(), active["status"].clone()),
        (serde_json::json!(1), serde_json::json!("active"))
    );
    let shown = ok(&alice, &["policy", "show", "1"]);
    for word in ["stricter default", "agreed", "alice", "bob", "active"] {
        assert!(shown.contains(word), "{word} in {shown}");
    }
    let versions = ok(&alice, &["policy", "versions"]);
    assert!(versions.contains("active"), "{versions}");

    // An exception alice requests, bob approves; lists find it by its expiry.
    let requested = json(
        &alice,
        &[
            "exceptions",
            "request",
            "--vulnerability",
            "CVE-2024-0001",
            "--package",
            "pkg:npm/left-pad",
            "--type",
            "accepted_risk",
            "--justification",
            "Replaced next quarter, unreachable until then.",
            "--expires-in-days",
            "10",
        ],
    );
    let id = requested["id"].as_str().unwrap().to_owned();
    assert_eq!(requested["status"], "requested");
    let (code, _, err) = cli(&alice, &["exceptions", "approve", &id]);
    assert_eq!(code, Some(3), "alice has no policy:approve: {err}");
    let (code, _, err) = cli(&bob, &["exceptions", "reject", &id]);
    assert_eq!(code, Some(6), "rejecting needs a reason: {err}");
    let approved = json(&bob, &["exceptions", "approve", &id]);
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["decided_by"], "bob");
    let soon = json(
        &alice,
        &["exceptions", "list", "--expiring-within-days", "30"],
    );
    assert_eq!(soon["items"][0]["id"], id.as_str(), "{soon}");
    let later = json(
        &alice,
        &["exceptions", "list", "--expiring-within-days", "5"],
    );
    assert_eq!(later["items"], serde_json::json!([]), "{later}");
    let (code, _, err) = cli(
        &alice,
        &[
            "exceptions",
            "request",
            "--vulnerability",
            "CVE-2024-0002",
            "--type",
            "mitigated",
            "--justification",
            "too short",
            "--expires-in-days",
            "10",
        ],
    );
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("justification"), "{err}");
    ok(
        &bob,
        &["exceptions", "revoke", &id, "--reason", "fixed early"],
    );
    let revoked = json(&alice, &["exceptions", "get", &id]);
    assert_eq!(revoked["status"], "revoked");
}

/// Policy packs and rollouts from the command line, on the embedded default: an
/// administrator writes a pack, a tenant sees in `policy diff` what it would block, a
/// rollout goes through (its table shows the wave, its gate and progress), the tenant's
/// `policy get` names the pack; a bad `--wave` and a missing `--reason` are clear errors.
#[test]
fn cli_rolls_a_pack_out_and_shows_its_waves_and_the_shadow_diff() {
    let server = CliServer::start_with_config("[scheduler]\npoll_interval_ms = 100\n");
    let dir = &server.dir;
    let cli = |args: &[&str]| server.run(args);
    let ok = |args: &[&str]| {
        let (code, out, err) = cli(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        (out, err)
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let args = [&["--output", "json"], args].concat();
        serde_json::from_str(&ok(&args).0).unwrap()
    };
    ok(&["tenants", "create", "acme", "--name", "Acme"]);
    let advisories = dir.path().join("pad.json");
    std::fs::write(
        &advisories,
        serde_json::json!([{
            "id": "T-PAD", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
                          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.3.1"}]}]}]
        }])
        .to_string(),
    )
    .unwrap();
    ok(&["advisories", "import", advisories.to_str().unwrap()]);
    let sbom = dir.path().join("app.bom.json");
    std::fs::write(&sbom, crate::scans::tiny_sbom()).unwrap();
    ok(&[
        "--tenant",
        "acme",
        "scan",
        sbom.to_str().unwrap(),
        "--target",
        "web",
        "--wait",
    ]);
    let pack = dir.path().join("baseline.toml");
    std::fs::write(
        &pack,
        "name = \"baseline\"\nversion = 1\n[[rules]]\nid = \"no-left-pad\"\n\
         when = { packages = [\"pkg:npm/left-pad\"] }\noutcome = \"block\"\n",
    )
    .unwrap();
    let put = json(&["policy", "packs", "put", "baseline", pack.to_str().unwrap()]);
    assert_eq!(put["version"], 1);
    let (listed, _) = ok(&["policy", "packs", "list"]);
    assert!(listed.contains("baseline"), "{listed}");

    let (table, summary) = ok(&[
        "--tenant",
        "acme",
        "policy",
        "diff",
        "--pack",
        "baseline@1",
        "--findings",
    ]);
    assert!(summary.contains("1 newly blocked"), "{summary}");
    for word in [
        "web",
        "warn",
        "block",
        "T-PAD",
        "changed",
        "baseline@1 rule:no-left-pad",
    ] {
        assert!(table.contains(word), "{word} in {table}");
    }

    let (code, _, err) = cli(&[
        "rollouts",
        "create",
        "--pack",
        "baseline@1",
        "--wave",
        "150%",
        "--reason",
        "x",
    ]);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("percent"), "{err}");
    let (code, _, err) = cli(&[
        "rollouts",
        "create",
        "--pack",
        "baseline@1",
        "--wave",
        "acme",
    ]);
    assert_eq!(code, Some(2), "clap: --reason is required: {err}");
    let (code, _, err) = cli(&["tenants", "label", "acme", "tier"]);
    assert_eq!(code, Some(6), "{err}");
    let labelled = json(&["tenants", "label", "acme", "tier=gold"]);
    assert_eq!(labelled["labels"]["tier"], "gold");
    let created = json(&[
        "rollouts",
        "create",
        "--pack",
        "baseline@1",
        "--wave",
        "tier=gold",
        "--max-newly-blocked-percent",
        "100",
        "--bake",
        "0s",
        "--reason",
        "ban left-pad",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (table, header) = loop {
        let (table, header) = ok(&["rollouts", "get", &id]);
        if header.contains("completed") {
            break (table, header);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never completed: {header}{table}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(header.contains("baseline@1"), "{header}");
    for word in ["canary", "done", "1/1", "newly blocked <= 100%", "acme"] {
        assert!(table.contains(word), "{word} in {table}");
    }
    let (_, policy) = ok(&["--tenant", "acme", "policy", "get"]);
    assert!(policy.contains("pack baseline@1"), "{policy}");
    let listed = json(&["rollouts", "list"]);
    assert_eq!(listed["items"][0]["state"], "completed");
}

/// A `docker save` archive of one layer holding `files`, as `docker save` lays it out
/// (layer, config named by its digest, then `manifest.json`).
pub(crate) fn docker_archive(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    fn add(builder: &mut tar::Builder<&mut Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Written raw: the tar crate refuses to write a `..` path, a hostile archive's
        // point.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, bytes).unwrap();
    }
    let mut layer = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut layer);
        for (path, bytes) in files {
            add(&mut builder, path, bytes);
        }
        builder.finish().unwrap();
    }
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["stella-test:1"], "Layers": ["layer1/layer.tar"]
    }])
    .to_string();
    let mut archive = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut archive);
        add(&mut builder, "layer1/layer.tar", &layer);
        add(&mut builder, &config_name, config.as_bytes());
        add(&mut builder, "manifest.json", manifest.as_bytes());
        builder.finish().unwrap();
    }
    archive
}

/// `stella sbom` on a docker archive holding this machine's dpkg database and os-release:
/// the SBOM passes the CycloneDX 1.5 strict validator and lists exactly the packages
/// `dpkg-query -W` lists (name, version, architecture); a layer with an entry escaping
/// the root is refused with the entry named, and nothing is written.
#[test]
fn sbom_of_an_image_archive_equals_dpkg_query_and_validates() {
    let (Ok(status), Ok(query)) = (
        std::fs::read("/var/lib/dpkg/status"),
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Package} ${Version} ${Architecture}\n"])
            .output(),
    ) else {
        println!("skipping: no dpkg on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.tar");
    let os_release = std::fs::read("/etc/os-release").unwrap();
    std::fs::write(
        &image,
        docker_archive(&[
            ("etc/os-release", os_release),
            ("var/lib/dpkg/status", status),
        ]),
    )
    .unwrap();
    let sbom = dir.path().join("image.cdx.json");
    let output = stella(dir.path())
        .args([
            "sbom",
            image.to_str().unwrap(),
            "-o",
            sbom.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("docker-archive") && err.contains(" deb"),
        "{err}"
    );
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    let mut got = std::collections::BTreeSet::new();
    for component in document["components"].as_array().unwrap() {
        let purl = component["purl"].as_str().unwrap();
        assert!(purl.starts_with("pkg:deb/"), "{purl}");
        let arch = purl
            .split(['?', '&'])
            .find_map(|q| q.strip_prefix("arch="))
            .unwrap_or_default();
        got.insert(format!(
            "{} {} {arch}",
            component["name"].as_str().unwrap(),
            component["version"].as_str().unwrap()
        ));
    }
    let want: std::collections::BTreeSet<String> = String::from_utf8(query.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(want.len() > 10);
    assert_eq!(
        got.symmetric_difference(&want).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "Stella's inventory and dpkg-query differ"
    );
    // The strict CycloneDX 1.5 validator of cyclonedx-python-lib.
    if let Ok(python) = std::env::var("STELLA_TEST_DOCUMENTS_PYTHON") {
        let check = Command::new(python)
            .args([
                "-c",
                "import sys\nfrom cyclonedx.schema import SchemaVersion\n\
                 from cyclonedx.validation.json import JsonStrictValidator\n\
                 e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
                 sys.exit(str(e) if e else 0)",
                sbom.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    } else {
        assert!(
            std::env::var_os("STELLA_TEST_SERVICES").is_none(),
            "STELLA_TEST_DOCUMENTS_PYTHON must be set with the services"
        );
    }

    // The same files as an unpacked root filesystem: the same packages; a symbolic link
    // out of the root is not followed.
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/var/lib/dpkg/status", root.join("var/lib/dpkg/status")).unwrap();
    std::fs::copy("/etc/os-release", root.join("usr/lib/os-release")).unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("etc/evil")).unwrap();
    let from_root = dir.path().join("rootfs.cdx.json");
    let output = stella(dir.path())
        .args([
            "sbom",
            "--rootfs",
            root.to_str().unwrap(),
            "-o",
            from_root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("(rootfs)"), "{err}");
    let rootfs_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&from_root).unwrap()).unwrap();
    let purls = |doc: &serde_json::Value| -> std::collections::BTreeSet<String> {
        doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["purl"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(purls(&rootfs_doc), purls(&document));

    // `stella scan IMAGE.tar` makes the same SBOM and scans it on a server.
    let server = CliServer::start();
    let (code, _, err) = server.run(&["tenants", "create", "acme", "--name", "Acme"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = server.run(&[
        "--output",
        "json",
        "--tenant",
        "acme",
        "scan",
        image.to_str().unwrap(),
        "--wait",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("docker-archive"), "{err}");
    let scan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(scan["status"], "completed", "{out}");
    assert_eq!(
        scan["counts"]["components"].as_u64(),
        Some(want.len() as u64),
        "{out}"
    );

    // A hostile layer: refused, naming the entry; no SBOM written.
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(
        &hostile,
        docker_archive(&[("../../etc/cron.d/evil", b"* * * * * root id\n".to_vec())]),
    )
    .unwrap();
    let out = dir.path().join("hostile.cdx.json");
    let output = stella(dir.path())
        .args([
            "sbom",
            hostile.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("etc/cron.d/evil"), "{err}");
    assert!(!out.exists());
}

/// `stella worker` and `stella scheduler` serve their own metrics on `metrics_listen`
/// (only `serve` has the API's `/metrics`): what Prometheus scrapes of them, valid for
/// `promtool check metrics`; a taken port fails the start with one clear line.
#[test]
fn workers_and_schedulers_serve_their_metrics_on_metrics_listen() {
    let dir = tempfile::tempdir().unwrap();
    for (command, metric) in [
        ("worker", "stella_jobs_in_flight"),
        ("scheduler", "stella_scheduler_leader"),
    ] {
        let mut child = stella(dir.path())
            .arg(command)
            .env("STELLA_METRICS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = wait_for_logged_addr(&mut child, "metrics on http://");
        let reply = reqwest::blocking::get(format!("http://{addr}/metrics")).unwrap();
        assert_eq!(reply.status(), 200);
        let text = reply.text().unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{metric} "))),
            "{command}: {metric} missing from {text}"
        );
        let health = reqwest::blocking::get(format!("http://{addr}/healthz")).unwrap();
        assert_eq!(health.status(), 200);
        if let Some(promtool) = crate::api::tool("promtool") {
            let mut check = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
            let out = check.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{command}: promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A second process on the same port is refused at start, naming the setting.
        let taken = stella(dir.path())
            .arg(command)
            .env("STELLA_METRICS_LISTEN", &addr)
            .output()
            .unwrap();
        assert_one_line_error(&taken, &["metrics_listen", &addr]);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exit = child.wait().unwrap();
        assert!(exit.success(), "{command} exited {exit:?}");
    }
}

/// What `eval "$(ops/services.sh up)"` exports is usable by `stella` as it is: the README
/// has a user run commands in that shell, and `stella` refuses unknown `STELLA_*`
/// variables (the test-only ones are `STELLA_TEST_*`, which it ignores).
#[test]
fn the_services_environment_is_accepted_by_stella() {
    if std::env::var("STELLA_TEST_SERVICES").is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Not `stella()`: it clears the environment, and the inherited one is the subject.
    let output = Command::new(env!("CARGO_BIN_EXE_stella"))
        .current_dir(dir.path())
        .env("STELLA_DATA_DIR", dir.path().join("data"))
        .args(["config", "show"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
