//! Rules and channels as a tenant writes them: what is refused and where (the JSON
//! pointer the API answers with), and which events a rule matches, as a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stella_domain::notify::{
    ChannelConfig, ChannelSpec, DigestWindow, Envelope, QuietMode, RuleSpec, Severity, Throttle,
};

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn event(kind: &str, payload: Value) -> Envelope {
    Envelope::new(kind, "acme", at(), &format!("{kind}:{payload}"), payload)
}

fn rule(m: Value) -> RuleSpec {
    RuleSpec::parse(&json!({"name": "r", "match": m, "actions": [{"channel": "c"}]}))
        .unwrap_or_else(|e| panic!("{m}: {e}"))
}

#[test]
fn a_full_rule_reads_back_as_written() {
    let doc = json!({
        "name": "critical in prod",
        "enabled": false,
        "match": {
            "event_kinds": ["finding.new", "advisory.impact"],
            "min_severity": "HIGH",
            "dispositions": ["Block"],
            "targets": ["prod-*", "payments"],
            "labels": {"team": "web"},
            "vulnerabilities": ["CVE-2026-0001"],
            "vex_status": ["affected", "under_investigation"]
        },
        "actions": [
            {"channel": "sec-slack"},
            {"channel": "sec-mail", "template": "short", "digest": "1h"},
            {"channel": "audit", "digest": "5m"},
            {"channel": "daily", "digest": "1d"}
        ]
    });
    let r = RuleSpec::parse(&doc).unwrap();
    assert!(!r.enabled);
    assert_eq!(r.r#match.min_severity, Some(Severity::High));
    assert_eq!(r.r#match.dispositions, ["block"]);
    assert_eq!(
        r.actions.iter().map(|a| a.digest).collect::<Vec<_>>(),
        [
            DigestWindow::Instant,
            DigestWindow::OneHour,
            DigestWindow::FiveMinutes,
            DigestWindow::OneDay
        ]
    );
    assert_eq!(r.actions[1].template.as_deref(), Some("short"));
    // What is stored reads back to the same rule.
    let stored = serde_json::to_value(&r).unwrap();
    assert_eq!(stored["match"]["min_severity"], "high");
    assert_eq!(stored["actions"][1]["digest"], "1h");
    assert_eq!(RuleSpec::parse(&stored).unwrap(), r);
}

#[test]
fn malformed_rules_are_refused_at_their_place() {
    let base = || json!({"name": "r", "match": {"event_kinds": ["finding.new"]}, "actions": [{"channel": "c"}]});
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "unknown top-level field",
            Box::new(|d| d["colour"] = json!("red")),
            "/colour",
        ),
        (
            "unknown match field",
            Box::new(|d| d["match"]["namespaces"] = json!([])),
            "/match/namespaces",
        ),
        (
            "bad severity",
            Box::new(|d| d["match"]["min_severity"] = json!("severe")),
            "/match/min_severity",
        ),
        (
            "no kinds",
            Box::new(|d| d["match"]["event_kinds"] = json!([])),
            "/match/event_kinds",
        ),
        (
            "unknown kind",
            Box::new(|d| d["match"]["event_kinds"] = json!(["finding.new", "finding.old"])),
            "/match/event_kinds/1",
        ),
        (
            "bad disposition",
            Box::new(|d| d["match"]["dispositions"] = json!(["pass", "fail"])),
            "/match/dispositions/1",
        ),
        (
            "bad vex status",
            Box::new(|d| d["match"]["vex_status"] = json!(["maybe"])),
            "/match/vex_status/0",
        ),
        (
            "empty target",
            Box::new(|d| d["match"]["targets"] = json!([" "])),
            "/match/targets/0",
        ),
        (
            "label not a string",
            Box::new(|d| d["match"]["labels"] = json!({"team": 1})),
            "/match/labels/team",
        ),
        (
            "no actions",
            Box::new(|d| d["actions"] = json!([])),
            "/actions",
        ),
        (
            "bad digest",
            Box::new(|d| d["actions"][0]["digest"] = json!("15m")),
            "/actions/0/digest",
        ),
        (
            "unknown action field",
            Box::new(|d| d["actions"][0]["retry"] = json!(3)),
            "/actions/0/retry",
        ),
        (
            "empty channel",
            Box::new(|d| d["actions"][0]["channel"] = json!("")),
            "/actions/0/channel",
        ),
        (
            "empty template",
            Box::new(|d| d["actions"][0]["template"] = json!("")),
            "/actions/0/template",
        ),
        (
            "channel twice",
            Box::new(|d| {
                d["actions"] = json!([{"channel": "c"}, {"channel": "c", "digest": "1h"}])
            }),
            "/actions/1/channel",
        ),
        (
            "no name",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("name");
            }),
            "",
        ),
        ("blank name", Box::new(|d| d["name"] = json!("  ")), "/name"),
        (
            "no match",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("match");
            }),
            "",
        ),
        (
            "match not an object",
            Box::new(|d| d["match"] = json!([])),
            "/match",
        ),
    ];
    for (what, change, pointer) in cases {
        let mut doc = base();
        change(&mut doc);
        let err = RuleSpec::parse(&doc).expect_err(what);
        assert_eq!(err.pointer, pointer, "{what}: {err}");
        assert!(!err.message.is_empty());
    }
    let ok = RuleSpec::parse(&base()).unwrap();
    assert!(ok.enabled);
}

#[test]
fn the_match_table() {
    let finding = |id: &str, sev: Value, disp: &str, vex: &str| {
        json!({"vulnerability_id": id, "aliases": [format!("GHSA-{id}")], "purl": "pkg:npm/x@1",
               "severity": sev, "disposition": disp, "vex_status": vex})
    };
    let new_in = |target: &str, findings: Vec<Value>| {
        event(
            "finding.new",
            json!({"target": target, "labels": {"team": "web", "env": "prod"}, "findings": findings}),
        )
    };
    let mixed = new_in(
        "prod-web",
        vec![
            finding("CVE-1", json!("critical"), "pass", "not_affected"),
            finding("CVE-2", json!("low"), "block", "affected"),
        ],
    );
    let scored = new_in(
        "prod-web",
        vec![finding("CVE-3", json!(7.5), "warn", "affected")],
    );
    let no_severity = new_in("prod-web", vec![json!({"vulnerability_id": "CVE-4"})]);
    let none_left = new_in("prod-web", vec![]);
    let scan = event(
        "scan.completed",
        json!({"name": "prod-web", "disposition": "block"}),
    );
    let verdict = event(
        "verdict.changed",
        json!({"target": "api", "previous_disposition": "pass", "disposition": "block", "severity": "high"}),
    );
    let advisory = event(
        "advisory.impact",
        json!({"target": "api", "vulnerability_id": "GHSA-abcd", "severity": "medium"}),
    );
    let export = event("export.completed", json!({"profile": "nightly"}));

    let kinds = |k: &[&str]| json!(k);
    #[rustfmt::skip]
    let table: Vec<(&str, Value, &Envelope, bool)> = vec![
        ("kind matches", json!({"event_kinds": kinds(&["finding.new"])}), &mixed, true),
        ("kind differs", json!({"event_kinds": kinds(&["finding.resolved"])}), &mixed, false),
        ("one of the kinds", json!({"event_kinds": kinds(&["scan.completed", "finding.new"])}), &scan, true),
        // min_severity
        ("a critical finding is high enough", json!({"event_kinds": ["finding.new"], "min_severity": "high"}), &mixed, true),
        ("nothing critical", json!({"event_kinds": ["finding.new"], "min_severity": "critical"}), &scored, false),
        ("a CVSS 7.5 score is high", json!({"event_kinds": ["finding.new"], "min_severity": "high"}), &scored, true),
        ("a finding without severity cannot answer", json!({"event_kinds": ["finding.new"], "min_severity": "none"}), &no_severity, false),
        ("an empty findings list cannot answer", json!({"event_kinds": ["finding.new"], "min_severity": "low"}), &none_left, false),
        ("an export has no severity", json!({"event_kinds": ["export.completed"], "min_severity": "low"}), &export, false),
        ("an export without filters", json!({"event_kinds": ["export.completed"]}), &export, true),
        ("event-level severity", json!({"event_kinds": ["verdict.changed"], "min_severity": "high"}), &verdict, true),
        ("event-level severity too low", json!({"event_kinds": ["advisory.impact"], "min_severity": "high"}), &advisory, false),
        // one finding must satisfy every finding-level filter at once
        ("critical and block are on different findings", json!({"event_kinds": ["finding.new"], "min_severity": "critical", "dispositions": ["block"]}), &mixed, false),
        ("critical and pass are on one finding", json!({"event_kinds": ["finding.new"], "min_severity": "critical", "dispositions": ["pass"]}), &mixed, true),
        ("low and affected on one finding", json!({"event_kinds": ["finding.new"], "min_severity": "low", "vex_status": ["affected"]}), &mixed, true),
        ("critical and affected on none", json!({"event_kinds": ["finding.new"], "min_severity": "critical", "vex_status": ["affected"]}), &mixed, false),
        ("CVE-1 is not_affected", json!({"event_kinds": ["finding.new"], "vulnerabilities": ["cve-1"], "vex_status": ["affected"]}), &mixed, false),
        ("CVE-2 by id", json!({"event_kinds": ["finding.new"], "vulnerabilities": ["CVE-2"], "vex_status": ["affected"]}), &mixed, true),
        ("by alias", json!({"event_kinds": ["finding.new"], "vulnerabilities": ["GHSA-CVE-1"]}), &mixed, true),
        ("unknown id", json!({"event_kinds": ["finding.new"], "vulnerabilities": ["CVE-9"]}), &mixed, false),
        ("advisory by id", json!({"event_kinds": ["advisory.impact"], "vulnerabilities": ["ghsa-ABCD"]}), &advisory, true),
        // dispositions at the event level
        ("scan blocked", json!({"event_kinds": ["scan.completed"], "dispositions": ["block"]}), &scan, true),
        ("scan not warned", json!({"event_kinds": ["scan.completed"], "dispositions": ["warn"]}), &scan, false),
        ("verdict changed to block", json!({"event_kinds": ["verdict.changed"], "dispositions": ["block"]}), &verdict, true),
        ("verdict not changed to pass", json!({"event_kinds": ["verdict.changed"], "dispositions": ["pass"]}), &verdict, false),
        ("export has no disposition", json!({"event_kinds": ["export.completed"], "dispositions": ["pass"]}), &export, false),
        ("scan has no vex status", json!({"event_kinds": ["scan.completed"], "vex_status": ["affected"]}), &scan, false),
        // targets
        ("exact target", json!({"event_kinds": ["verdict.changed"], "targets": ["api"]}), &verdict, true),
        ("another target", json!({"event_kinds": ["verdict.changed"], "targets": ["ap"]}), &verdict, false),
        ("glob target", json!({"event_kinds": ["finding.new"], "targets": ["prod-*"]}), &mixed, true),
        ("glob misses", json!({"event_kinds": ["finding.new"], "targets": ["staging-*"]}), &mixed, false),
        ("a scan's name is its target", json!({"event_kinds": ["scan.completed"], "targets": ["*-web"]}), &scan, true),
        ("an export has no target", json!({"event_kinds": ["export.completed"], "targets": ["*"]}), &export, false),
        // labels
        ("labels equal", json!({"event_kinds": ["finding.new"], "labels": {"team": "web", "env": "prod"}}), &mixed, true),
        ("one label differs", json!({"event_kinds": ["finding.new"], "labels": {"team": "web", "env": "dev"}}), &mixed, false),
        ("label missing", json!({"event_kinds": ["finding.new"], "labels": {"owner": "x"}}), &mixed, false),
        ("no labels on the event", json!({"event_kinds": ["scan.completed"], "labels": {"team": "web"}}), &scan, false),
        // everything at once
        ("all filters hold", json!({"event_kinds": ["finding.new"], "targets": ["prod-*"], "labels": {"env": "prod"}, "min_severity": "low", "dispositions": ["block"], "vulnerabilities": ["CVE-2"], "vex_status": ["affected"]}), &mixed, true),
        ("all but the target", json!({"event_kinds": ["finding.new"], "targets": ["dev-*"], "labels": {"env": "prod"}, "min_severity": "low", "dispositions": ["block"], "vulnerabilities": ["CVE-2"], "vex_status": ["affected"]}), &mixed, false),
    ];
    for (what, m, ev, expected) in table {
        let r = rule(m.clone());
        assert_eq!(
            r.r#match.matches(ev),
            expected,
            "{what}: {m} on {}",
            ev.payload
        );
    }
}

#[test]
fn a_finding_without_a_field_reads_the_events() {
    let ev = event(
        "finding.new",
        json!({"target": "t", "disposition": "block", "severity": "critical",
               "findings": [{"vulnerability_id": "CVE-1"}]}),
    );
    let r = rule(
        json!({"event_kinds": ["finding.new"], "dispositions": ["block"], "min_severity": "critical"}),
    );
    assert!(r.r#match.matches(&ev));
}

#[test]
fn channels_read_back_and_are_refused_at_their_place() {
    let c = ChannelSpec::parse(&json!({
        "name": "sec-mail",
        "config": {"type": "email", "to": ["sec@example.com", "oncall@example.org"]},
        "throttle": {"max": 5, "per_seconds": 300},
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin", "mode": "digest"}
    }))
    .unwrap();
    assert_eq!(
        c.throttle,
        Throttle {
            max: 5,
            per_seconds: 300
        }
    );
    let q = c.quiet_hours.unwrap();
    assert_eq!(q.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(q.mode, QuietMode::Digest);
    let stored = serde_json::to_value(&c).unwrap();
    assert_eq!(stored["quiet_hours"]["start"], "22:00");
    assert_eq!(stored["quiet_hours"]["timezone"], "Europe/Berlin");
    assert_eq!(stored["config"]["type"], "email");
    assert_eq!(ChannelSpec::parse(&stored).unwrap(), c);

    for (config, kind) in [
        (
            json!({"type": "webhook", "url": "https://example.com/hook"}),
            "webhook",
        ),
        (
            json!({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}),
            "slack",
        ),
        (
            json!({"type": "teams", "url": "https://example.logic.azure.com/workflows/1"}),
            "teams",
        ),
    ] {
        let c = ChannelSpec::parse(&json!({"name": "n", "config": config})).unwrap();
        assert_eq!(c.config.channel_type().as_str(), kind);
        assert!(c.config.url().is_some());
        assert!(!matches!(c.config, ChannelConfig::Email { .. }));
    }

    let cases = [
        (
            json!({"name": "n", "config": {"type": "sms", "to": "+1"}}),
            "/config/type",
        ),
        (json!({"name": "n", "config": {"type": 3}}), "/config/type"),
        (
            json!({"name": "n", "config": {"url": "https://x.org"}}),
            "/config/type",
        ),
        (json!({"name": "n", "config": "email"}), "/config"),
        (
            json!({"name": "n", "config": {"type": "email", "to": []}}),
            "/config/to",
        ),
        (
            json!({"name": "n", "config": {"type": "email", "to": ["a@x.org", "not an address"]}}),
            "/config/to/1",
        ),
        (
            json!({"name": "n", "config": {"type": "email", "to": ["a@x.org\r\nBcc: b@y.org"]}}),
            "/config/to/0",
        ),
        (
            json!({"name": "n", "config": {"type": "email", "to": ["a@x.org"], "cc": []}}),
            "/config/cc",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "file:///etc/passwd"}}),
            "/config/url",
        ),
        (
            json!({"name": "n", "config": {"type": "slack", "url": "https://u:p@hooks.slack.com/x"}}),
            "/config/url",
        ),
        (json!({"name": "n", "config": {"type": "teams"}}), "/config"),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org", "secret": "whsec_x"}}),
            "/config/secret",
        ),
        (
            json!({"name": "", "config": {"type": "webhook", "url": "https://x.org"}}),
            "/name",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "throttle": {"max": 0, "per_seconds": 60}}),
            "/throttle/max",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "throttle": {"max": 1, "per_seconds": 0}}),
            "/throttle/per_seconds",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "throttle": {"max": 1}}),
            "/throttle",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "quiet_hours": {"start": "25:00", "end": "07:00", "timezone": "UTC", "mode": "hold"}}),
            "/quiet_hours/start",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus", "mode": "hold"}}),
            "/quiet_hours/timezone",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC", "mode": "drop"}}),
            "/quiet_hours/mode",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "quiet_hours": {"start": "07:00", "end": "07:00", "timezone": "UTC", "mode": "hold"}}),
            "/quiet_hours/end",
        ),
        (
            json!({"name": "n", "config": {"type": "webhook", "url": "https://x.org"}, "secret": "whsec_x"}),
            "/secret",
        ),
    ];
    for (doc, pointer) in cases {
        let err = ChannelSpec::parse(&doc).expect_err(&doc.to_string());
        assert_eq!(err.pointer, pointer, "{doc}: {err}");
    }
}
