//! What operators watch Stella with, checked against what Stella is: the Grafana dashboard
//! (`ops/grafana/stella.json`) and the Prometheus alert rules (`ops/prometheus/alerts.yml`)
//! name only metrics Stella exports, their PromQL parses (`promtool`), the alerts fire as
//! their unit tests say, each has a section in `docs/RUNBOOK.md`, and the dashboard is a
//! well-formed one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::api::{start, tool};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Whether a registered metric is a histogram (exposed as `_bucket`, `_sum`, `_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Histogram,
}

/// The metric families Stella registers: every `"stella_…"` literal in the crates'
/// `metrics.rs` files, the one place each crate creates its metrics.
fn registered() -> BTreeMap<String, Shape> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n == "metrics.rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in ["supervisor", "scheduler", "api", "actors"] {
        walk(&repo().join(krate).join("src"), &mut files);
    }
    walk(&repo().join("src"), &mut files);
    let mut names = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, name) in tokens(&text) {
            if text[..at].ends_with('"') && text[at + name.len()..].starts_with('"') {
                // The constructor the name is given to, within the few lines before it.
                let mut from = at.saturating_sub(160);
                while !text.is_char_boundary(from) {
                    from -= 1;
                }
                let before = &text[from..at];
                let shape = match before.rfind("HistogramOpts::new(") {
                    Some(h) if before[h..].matches("::new(").count() == 1 => Shape::Histogram,
                    _ => Shape::Single,
                };
                names.insert(name.to_owned(), shape);
            }
        }
    }
    names
}

/// Every `stella_…` word in `text` (a metric name in PromQL or prose), with its offset.
fn tokens(text: &str) -> Vec<(usize, &str)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    for (at, _) in text.match_indices("stella_") {
        if text[..at].chars().next_back().is_some_and(word) {
            continue;
        }
        let len = text[at..]
            .find(|c: char| !word(c))
            .unwrap_or(text.len() - at);
        out.push((at, &text[at..at + len]));
    }
    out
}

/// The names in `text` that are not series Stella exports: a registered counter or gauge
/// by its name, a registered histogram by its `_bucket`, `_sum` or `_count` series.
fn unknown_metrics(text: &str, registered: &BTreeMap<String, Shape>) -> BTreeSet<String> {
    tokens(text)
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| {
            let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| registered.get(base) == Some(&Shape::Histogram))
            });
            registered.get(*name) != Some(&Shape::Single) && !histogram_series
        })
        .map(str::to_owned)
        .collect()
}

/// The source scan finds what a live process exports: every `stella_*` family a process
/// lists after doing work is one `registered()` knows, with the same shape. (The scan
/// also knows the families no work made appear yet: a labelled metric with no series.)
#[actix_web::test]
async fn the_registry_scan_finds_what_a_live_process_exports() {
    let registered = registered();
    let server = start(|_| {}).await;
    server.create_tenant("mon").await;
    let (_, token) = server.token("mon", &["jobs:write", "jobs:read"]).await;
    let id = server.submit(&token, json!({}), 1).await;
    server.wait_job(&token, &id, "succeeded").await;
    let text = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.handle.stop(true).await;
    let mut live = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let shape = if kind == "histogram" {
                Shape::Histogram
            } else {
                Shape::Single
            };
            live.insert(name.to_owned(), shape);
        }
    }
    assert!(
        live.len() >= 10 && live.contains_key("stella_job_executions_total"),
        "too few families to compare: {live:?}"
    );
    for (name, shape) in &live {
        assert_eq!(
            registered.get(name),
            Some(shape),
            "{name} ({shape:?}) is exported but the scan of the metrics.rs files says {:?}",
            registered.get(name)
        );
    }
}

/// Every `stella_*` name in the dashboard, the alert rules and their unit tests is a
/// series Stella exports.
#[test]
fn dashboard_and_alerts_name_only_exported_metrics() {
    let registered = registered();
    assert!(
        registered.get("stella_job_step_duration_seconds") == Some(&Shape::Histogram)
            && registered.get("stella_scheduler_leader") == Some(&Shape::Single),
        "the registry scan is broken: {registered:?}"
    );
    for path in [
        "ops/grafana/stella.json",
        "ops/prometheus/alerts.yml",
        "ops/prometheus/alerts.test.yml",
    ] {
        let unknown = unknown_metrics(&read(path), &registered);
        assert!(
            unknown.is_empty(),
            "{path} names metrics Stella does not export: {unknown:?}; it exports {:?}",
            registered.keys().collect::<Vec<_>>()
        );
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read("ops/grafana/stella.json")).expect("ops/grafana/stella.json")
}

/// The panels, with those inside collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// A dashboard Grafana imports as it is: a recent schema, the data source a variable,
/// every panel placed, with a unique id, the data source and its queries.
#[test]
fn dashboard_is_well_formed() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().unwrap_or(0) >= 39,
        "schemaVersion"
    );
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "uid");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "title");
    let variables = d["templating"]["list"].as_array().expect("templating.list");
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
    let source = variable("datasource").expect("a datasource variable");
    assert_eq!(source["type"], "datasource");
    assert_eq!(source["query"], "prometheus");
    for name in ["instance", "role", "kind"] {
        let v = variable(name).unwrap_or_else(|| panic!("a {name} variable"));
        assert_eq!(v["datasource"]["uid"], "${datasource}", "variable {name}");
    }
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(&d) {
        let title = panel["title"].as_str().unwrap_or_default();
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "panel id {id} twice ({title})");
        assert!(!title.is_empty(), "panel {id} has no title");
        let grid = &panel["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].is_u64(), "panel {id} ({title}): gridPos.{key}");
        }
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "panel {id} ({title}) is wider than the dashboard"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {id} ({title}): datasource"
        );
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {id} ({title}) has no targets"));
        let mut refs = BTreeSet::new();
        for target in targets {
            let r = target["refId"].as_str().expect("refId");
            assert!(refs.insert(r), "panel {id} ({title}): refId {r} twice");
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "panel {id} ({title}) {r}: no expr"
            );
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {id} ({title}) {r}: datasource"
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "only {queries} queries");
}

/// A dashboard query as PromQL: Grafana's interval variables and the dashboard's own
/// variables replaced by what Grafana would put there; any other `$` is an error.
fn as_promql(expr: &str, variables: &[String]) -> String {
    let mut out = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    for name in variables {
        out = out
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    assert!(
        !out.contains('$'),
        "{expr}: a variable the dashboard does not define"
    );
    out
}

/// Every dashboard query parses as PromQL: all of them as recording rules in one rules
/// file (JSON is YAML), checked by `promtool check rules`.
#[test]
fn dashboard_queries_parse() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let d = dashboard();
    let variables: Vec<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    let mut rules = Vec::new();
    for panel in panels(&d) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            rules.push(json!({
                "record": format!("dashboard:panel_{}_{}", panel["id"], target["refId"].as_str().unwrap_or("")),
                "expr": as_promql(expr, &variables),
            }));
        }
    }
    assert!(!rules.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    let body = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, serde_json::to_vec_pretty(&body).unwrap()).unwrap();
    let output = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool check rules (the dashboard's queries): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The alert rules are valid, and fire when and how their unit tests say (`promtool
/// test rules` evaluates them over made-up series).
#[test]
fn alert_rules_pass_promtool_check_and_their_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = repo().join("ops/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let output = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Each alert has a `runbook_url` to its own section of docs/RUNBOOK.md, and unit tests
/// where it fires and where it does not.
#[test]
fn every_alert_has_a_runbook_section_and_tests_both_ways() {
    let rules = read("ops/prometheus/alerts.yml");
    let tests = read("ops/prometheus/alerts.test.yml");
    let runbook = read("docs/RUNBOOK.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    // Each alert with the runbook_url written before the next alert.
    let mut alerts: Vec<(String, Option<String>)> = Vec::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), None));
        } else if let Some(url) = line.strip_prefix("runbook_url:") {
            let last = alerts.last_mut().expect("a runbook_url before any alert");
            last.1 = Some(url.trim().trim_matches('"').to_owned());
        }
    }
    assert!(alerts.len() >= 10, "{alerts:?}");
    // Per alert name: (cases expecting alerts, cases expecting none).
    let mut cases: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            let entry = cases.entry(name.trim()).or_default();
            if lines.get(i + 1) == Some(&"exp_alerts: []") {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    for (name, url) in &alerts {
        let url = url
            .as_deref()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let expected = format!("docs/RUNBOOK.md#{}", name.to_lowercase());
        assert_eq!(url, expected, "{name}: runbook_url");
        assert!(
            anchors.contains(&name.to_lowercase()),
            "docs/RUNBOOK.md has no section {name}"
        );
        let (fires, quiet) = cases.get(name.as_str()).copied().unwrap_or_default();
        assert!(
            fires > 0 && quiet > 0,
            "{name}: {fires} unit tests where it fires, {quiet} where it does not"
        );
    }
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for name in cases.keys() {
        assert!(
            names.contains(name),
            "alerts.test.yml tests {name}, which alerts.yml lacks"
        );
    }
}
