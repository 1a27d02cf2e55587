//! The deployment files in `ops/deploy/`, checked by their own tools as far as this
//! machine allows (no container engine, no systemd as PID 1): the systemd unit by
//! `systemd-analyze verify` and `security`, the compose file against the Compose
//! Specification's JSON schema and by Docker Compose's own `config`, the Dockerfile by
//! reading it against Cargo.toml and the README. The settings each file gives Stella are
//! accepted by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::api::tool;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `stella config show` with exactly these `STELLA_*` variables (no other): succeeds
/// only when each is a setting `stella` knows, with a value it takes.
fn assert_settings_accepted(what: &str, vars: &[(String, String)]) {
    assert!(!vars.is_empty(), "{what}: no STELLA_* settings found");
    let mut command = Command::new(env!("CARGO_BIN_EXE_stella"));
    command.args(["config", "show", "--output", "json"]);
    command.env_clear();
    command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.envs(vars.iter().map(|(k, v)| (k, v)));
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: `stella config show` refuses {:?}: {}",
        vars.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        text(&output)
    );
}

/// A root for `systemd-analyze --root`: the unit where systemd looks for it, the built
/// `stella` where ExecStart names it, and this machine's system units (the targets the
/// unit pulls in).
fn systemd_root(unit: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("stella.service"), unit).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let binary = exec.split_whitespace().next().unwrap();
    assert!(
        binary.starts_with('/'),
        "ExecStart {binary} is not absolute"
    );
    let target = root.path().join(binary.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    if std::fs::hard_link(env!("CARGO_BIN_EXE_stella"), &target).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_stella"), &target).unwrap();
    }
    let system = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("this machine's systemd units (sysinit.target)");
    let into = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&into).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(system)
        .arg(&into)
        .output()
        .unwrap();
    assert!(copied.status.success(), "cp -a: {}", text(&copied));
    root
}

/// `systemd-analyze verify` on the unit as shipped (its ExecStart is the built binary,
/// under `--root`), with no complaint at all: verify exits 0 on unknown keys and bad
/// values and only prints them. Then `systemd-analyze security --offline`: the
/// hardening keeps the exposure score at 2.0 ("OK") or under. Last, the ExecStart
/// command line and its Environment= are what `stella` takes.
#[test]
fn systemd_unit_passes_systemd_analyze() {
    let Some(analyze) = tool("systemd_analyze") else {
        return;
    };
    let unit = read("ops/deploy/stella.service");
    let root = systemd_root(&unit);
    let path = root.path().join("etc/systemd/system/stella.service");
    let verify = Command::new(&analyze)
        .args(["verify", "--man=no", "--no-pager"])
        .arg(format!("--root={}", root.path().display()))
        .arg(&path)
        .output()
        .unwrap();
    let said = text(&verify);
    assert!(
        verify.status.success() && !said.contains("stella.service"),
        "systemd-analyze verify: {said}"
    );
    let security = Command::new(&analyze)
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(format!("--root={}", root.path().display()))
        .arg("stella.service")
        .output()
        .unwrap();
    assert!(
        security.status.success(),
        "systemd-analyze security: exposure above 2.0: {}",
        text(&security)
    );

    // ExecStart's arguments, with a config file that has a key no setting has: `stella`
    // must get as far as reading that file and name the key (exit 1), not refuse the
    // command line (exit 2).
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("stella.toml");
    std::fs::write(&config, "no_such_setting = 1\n").unwrap();
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "/etc/stella/stella.toml" {
                config.display().to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert!(
        args.iter().any(|a| *a == config.display().to_string()),
        "ExecStart no longer reads /etc/stella/stella.toml: {exec}"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_stella"))
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(1),
        "stella {args:?}: {}",
        text(&run)
    );
    assert!(
        text(&run).contains("no_such_setting"),
        "stella {args:?}: {}",
        text(&run)
    );
    let vars: Vec<(String, String)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .flat_map(str::split_whitespace)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_settings_accepted("stella.service Environment=", &vars);
}

/// The variables compose.yaml requires, as an operator's .env would give them.
const COMPOSE_ENV: [(&str, &str); 3] = [
    ("POSTGRES_PASSWORD", "pg-secret"),
    ("STELLA_S3_ACCESS_KEY_ID", "stella-key"),
    ("STELLA_S3_SECRET_ACCESS_KEY", "stella-secret"),
];

/// compose.yaml is a valid Compose file: against the Compose Specification's JSON
/// schema (check-jsonschema's vendored copy), and as Docker Compose itself reads it
/// (`docker compose config`: interpolation, references between services, volumes),
/// which needs no engine. The settings it gives Stella are ones `stella` takes, and
/// the Dockerfile it builds exists.
#[test]
fn compose_file_passes_the_compose_specification_and_docker_compose() {
    let compose = repo().join("ops/deploy/compose.yaml");
    if let Some(check) = tool("check_jsonschema") {
        let output = Command::new(check)
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(&compose)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "check-jsonschema (compose-spec): {}",
            text(&output)
        );
    }
    let Some(docker_compose) = tool("docker_compose") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    // `without`: the one required variable left out ("" for none).
    let config = |without: &str| {
        let mut command = Command::new(&docker_compose);
        command
            .arg("-f")
            .arg(&compose)
            .args(["config", "--format", "json"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", home.path());
        command.envs(COMPOSE_ENV.into_iter().filter(|(name, _)| *name != without));
        command.output().unwrap()
    };
    // Without any one of the required secrets, Compose refuses to start anything and
    // names it.
    for (name, _) in COMPOSE_ENV {
        let refused = config(name);
        assert!(
            !refused.status.success() && text(&refused).contains(name),
            "docker compose config without {name}: {}",
            text(&refused)
        );
    }
    let output = config("");
    assert!(
        output.status.success(),
        "docker compose config: {}",
        text(&output)
    );
    let project: Value = serde_json::from_slice(&output.stdout).expect("compose config JSON");
    let stella = &project["services"]["stella"];
    let build = &stella["build"];
    let dockerfile = Path::new(build["context"].as_str().expect("build.context"))
        .join(build["dockerfile"].as_str().expect("build.dockerfile"));
    assert!(
        dockerfile.is_file(),
        "{} does not exist",
        dockerfile.display()
    );
    assert_eq!(
        dockerfile.canonicalize().unwrap(),
        repo().join("ops/deploy/Dockerfile").canonicalize().unwrap()
    );
    let vars: Vec<(String, String)> = stella["environment"]
        .as_object()
        .expect("services.stella.environment")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    assert!(
        vars.iter().all(|(k, _)| k.starts_with("STELLA_")),
        "{vars:?}"
    );
    assert_settings_accepted("compose.yaml services.stella.environment", &vars);
}

/// The build stage's COPY sources.
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    let mut stage = 0;
    let mut sources = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stage += 1;
        } else if stage == 1 {
            if let Some(rest) = line.strip_prefix("COPY ") {
                let words: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (_, from) = words.split_last().expect("COPY with a destination");
                sources.extend(from.iter().map(|s| s.trim_end_matches('/').to_owned()));
            }
        }
    }
    sources
}

/// The Dockerfile cannot be built here (no image registry to pull `rust` and `debian`
/// from). What can be checked without building: its build stage copies every path
/// Cargo.toml names (workspace members, path dependencies, the root package's
/// targets), every source it copies exists, and its cargo command is the one the
/// README gives for a production build, writing the binary it then installs.
#[test]
fn dockerfile_copies_the_workspace_and_builds_what_the_readme_says() {
    let dockerfile = read("ops/deploy/Dockerfile");
    let manifest = read("Cargo.toml");
    let readme = read("README.md");
    let copies = build_stage_copies(&dockerfile);
    for source in &copies {
        assert!(
            repo().join(source).exists(),
            "the Dockerfile copies {source}, which does not exist"
        );
    }
    // Every quoted path in Cargo.toml: members = [...], path = "...", and the root
    // package's src/ — less the excluded folders, which the build does not need.
    let quoted = |line: &str| -> Vec<String> {
        line.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "src".to_owned(),
    ];
    let mut excluded = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with("members") {
            needed.extend(quoted(line));
        } else if line.starts_with("exclude") {
            excluded.extend(quoted(line));
        } else if let Some(at) = line.find("path = \"") {
            needed.extend(quoted(&line[at..]).into_iter().take(1));
        }
    }
    assert!(
        needed.iter().any(|p| p == "tests/harness") && needed.iter().any(|p| p == "store"),
        "the Cargo.toml scan is broken: {needed:?}"
    );
    for path in needed.iter().filter(|p| !excluded.contains(p)) {
        let covered = copies
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}/")));
        assert!(
            covered,
            "ops/deploy/Dockerfile does not COPY {path} (copies {copies:?})"
        );
    }

    // The cargo command: from `cargo build` to the end of its command.
    let at = dockerfile
        .find("cargo build")
        .expect("a cargo build command");
    let command: String = dockerfile[at..]
        .split(['\\', '\n', '&'])
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        readme.contains(&format!("`{command}`")),
        "the README does not give the Dockerfile's build command `{command}`"
    );
    for flag in ["--release", "--locked", "--bin stella"] {
        assert!(command.contains(flag), "`{command}` lacks {flag}");
    }
    assert!(
        dockerfile.contains("target/release/stella"),
        "the Dockerfile does not install what `{command}` writes (target/release/stella)"
    );
    // The settings the image sets are ones `stella` takes.
    let mut vars = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines().map(str::trim) {
        let body = if let Some(rest) = line.strip_prefix("ENV ") {
            rest
        } else if in_env {
            line
        } else {
            continue;
        };
        in_env = body.ends_with('\\');
        for kv in body.trim_end_matches('\\').split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                vars.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    assert_settings_accepted("Dockerfile ENV", &vars);
}
