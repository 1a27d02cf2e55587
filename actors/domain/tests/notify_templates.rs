//! Templates as a person reads their output and as a tenant writes them: what the shipped
//! messages say, errors with their line and column, the sandbox's limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use serde_json::json;
use stella_domain::notify::template::{
    sample_events, MAX_OUTPUT_BYTES, MAX_SUBJECT_CHARS, MAX_TEMPLATE_BYTES,
};
use stella_domain::notify::{check_template, render, render_digest, ChannelType, Envelope};

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn finding_new() -> Envelope {
    Envelope::new(
        "finding.new",
        "acme",
        at(),
        "finding.new:1",
        json!({
            "target": "web-frontend",
            "findings": [
                {"vulnerability_id": "CVE-2026-1234", "purl": "pkg:npm/lodash@4.17.20",
                 "severity": "critical", "disposition": "block", "vex_status": "affected",
                 "fixed_version": "4.17.21"},
                {"vulnerability_id": "GHSA-aaaa-bbbb-cccc", "purl": "pkg:npm/<script>alert(1)</script>@1",
                 "severity": 5.3, "disposition": "warn"}
            ]
        }),
    )
}

#[test]
fn finding_new_names_the_vulnerabilities_the_severity_and_the_target_everywhere() {
    let ev = finding_new();
    for channel in ChannelType::ALL {
        let r = render(None, channel, &ev).unwrap();
        // The subject alone says it all; the text lists each finding.
        for needle in [
            "CVE-2026-1234",
            "GHSA-aaaa-bbbb-cccc",
            "critical",
            "web-frontend",
        ] {
            assert!(
                r.subject.contains(needle),
                "{channel:?}: {needle} missing from {:?}",
                r.subject
            );
        }
        for needle in ["CVE-2026-1234 (critical)", "GHSA-aaaa-bbbb-cccc (medium)"] {
            assert!(
                r.text.contains(needle),
                "{channel:?}: {needle} missing from {:?}",
                r.text
            );
        }
        assert!(!r.subject.contains('\n'));
    }
    let email = render(None, ChannelType::Email, &ev).unwrap();
    assert_eq!(
        email.subject,
        "[Stella] 2 new vulnerabilities in web-frontend, highest critical: CVE-2026-1234, GHSA-aaaa-bbbb-cccc"
    );
    assert!(email.text.contains(
        "CVE-2026-1234 (critical) in pkg:npm/lodash@4.17.20, VEX affected, fixed in 4.17.21"
    ));
    // The HTML part is escaped: a package name cannot become markup.
    let html = email.html.unwrap();
    assert!(html.contains("CVE-2026-1234"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;")
    );
    assert!(!html.contains("<script>"));
    // The plain part is not.
    assert!(email.text.contains("pkg:npm/<script>alert(1)</script>@1"));
    // Only email has an HTML part.
    assert_eq!(render(None, ChannelType::Slack, &ev).unwrap().html, None);
}

#[test]
fn one_finding_reads_as_one_sentence() {
    let ev = Envelope::new(
        "finding.new",
        "acme",
        at(),
        "k",
        json!({"target": "api", "findings": [{"vulnerability_id": "CVE-2026-9", "severity": "high"}]}),
    );
    let r = render(None, ChannelType::Slack, &ev).unwrap();
    assert_eq!(r.subject, "New high vulnerability CVE-2026-9 in api");
}

#[test]
fn verdict_changed_shows_old_and_new() {
    let ev = Envelope::new(
        "verdict.changed",
        "acme",
        at(),
        "k",
        json!({"target": "payments", "previous_disposition": "pass", "disposition": "block"}),
    );
    for channel in ChannelType::ALL {
        let r = render(None, channel, &ev).unwrap();
        assert!(
            r.subject
                .contains("Verdict for payments changed: pass → block"),
            "{channel:?}: {}",
            r.subject
        );
    }
}

#[test]
fn every_kind_renders_with_every_shipped_template() {
    for ev in sample_events() {
        for channel in ChannelType::ALL {
            let r = render(None, channel, &ev).unwrap();
            assert!(
                !r.subject.is_empty() && !r.text.is_empty(),
                "{} {channel:?}",
                ev.kind
            );
        }
    }
}

#[test]
fn digests_summarise_their_window() {
    let events = sample_events();
    let window = (at(), at() + chrono::Duration::hours(1));
    let r = render_digest(None, ChannelType::Email, &events, window, 3).unwrap();
    assert!(
        r.subject
            .starts_with("[Stella] 10 events for acme: 1 scan.completed, 1 finding.new"),
        "{}",
        r.subject
    );
    assert!(
        r.text
            .contains("2026-03-01 10:00 UTC – 2026-03-01 11:00 UTC"),
        "{}",
        r.text
    );
    assert!(r.text.contains("Held by the throttle: 3"));
    assert!(r
        .text
        .contains("Verdict for web-frontend changed: pass → block"));
    assert!(r.text.contains("as a digest"));
    // A tenant template can tell a digest from a single event.
    let source = "{% block subject %}{% if digest %}{{ digest.count }} in {{ digest.start }}{% else %}{{ event.kind }}{% endif %}{% endblock %}{% block text %}{% for e in events %}{{ e.id }} {% endfor %}{% endblock %}";
    check_template(source).unwrap();
    let r = render_digest(Some(source), ChannelType::Webhook, &events[..2], window, 0).unwrap();
    assert_eq!(r.subject, "2 in 2026-03-01T10:00:00Z");
    assert_eq!(r.text.split(' ').count(), 2);
    let r = render(Some(source), ChannelType::Webhook, &events[1]).unwrap();
    assert_eq!(r.subject, "finding.new");
}

#[test]
fn tenant_templates_read_the_event_and_fold_the_subject() {
    let source = "{% block subject %}  {{ event.payload.target | upper }}\n  {{ facts.severity }}\r\n{% endblock %}\n{% block text %}{{ channel }}: {{ facts.vulnerabilities | join(', ') }}{{ event.payload.missing.deeper }}{% endblock %}";
    check_template(source).unwrap();
    let r = render(Some(source), ChannelType::Teams, &finding_new()).unwrap();
    assert_eq!(r.subject, "WEB-FRONTEND critical");
    assert_eq!(r.text, "teams: CVE-2026-1234, GHSA-aaaa-bbbb-cccc");
    assert_eq!(r.html, None);
    // A long subject is cut.
    let long = "{% block subject %}{% for f in events %}{{ 'x' ~ f.id ~ f.id ~ f.id ~ f.id ~ f.id ~ f.id ~ f.id }}{% endfor %}{% endblock %}{% block text %}t{% endblock %}";
    let r = render(Some(long), ChannelType::Email, &finding_new()).unwrap();
    assert_eq!(r.subject.chars().count(), MAX_SUBJECT_CHARS);
    assert!(r.subject.ends_with('…'));
}

#[test]
fn template_errors_name_line_and_column() {
    #[rustfmt::skip]
    let cases: Vec<(&str, u32, u32, &str)> = vec![
        // Syntax: an unclosed tag on line 2.
        ("{% block subject %}ok{% endblock %}\n{% block text %}{{ event.kind }{% endblock %}", 2, 31, "syntax"),
        // An unknown filter.
        ("{% block subject %}{{ event.kind | shout }}{% endblock %}{% block text %}t{% endblock %}", 1, 36, "shout"),
        // A misspelt variable, pointed at.
        ("{% block subject %}x{% endblock %}\n{% block text %}\n  {{ evnt.kind }}{% endblock %}", 3, 6, "evnt"),
        // A block left open.
        ("{% block subject %}x{% endblock %}\n{% block text %}\n{% if facts %}y{% endblock %}", 3, 19, "syntax"),
        // Required blocks.
        ("{% block text %}t{% endblock %}", 1, 1, "subject"),
        ("{% block subject %}s{% endblock %}", 1, 1, "text"),
        // A filter the sandbox does not offer.
        ("{% block subject %}{{ 'a' | replace('a', 'bb') }}{% endblock %}{% block text %}t{% endblock %}", 1, 29, "replace"),
        // A function the sandbox does not offer.
        ("{% block subject %}{% for i in range(10) %}{{ i }}{% endfor %}{% endblock %}{% block text %}t{% endblock %}", 1, 32, "range"),
        // Forbidden statements and operators.
        ("{% block subject %}{% set x = 1 %}{% endblock %}{% block text %}t{% endblock %}", 1, 23, "`set`"),
        ("{% extends 'base' %}", 1, 4, "`extends`"),
        ("{% block subject %}\n\n   {{ 'ab' * 50000000 }}{% endblock %}", 3, 12, "`*`"),
        // A type error at render time (a string is not callable).
        ("{% block subject %}{{ event.kind() }}{% endblock %}{% block text %}t{% endblock %}", 1, 28, "not callable"),
    ];
    let mut wrong = Vec::new();
    for (source, line, column, what) in cases {
        let err = check_template(source).expect_err(source);
        if (err.line, err.column) != (line, column) || !err.message.contains(what) {
            wrong.push(format!(
                "{source}\n  => {err}, expected {line}:{column} {what:?}"
            ));
        }
        // Rendering a template that fails its check fails the same way.
        let at_render = render(Some(source), ChannelType::Email, &finding_new());
        if let Err(e) = at_render {
            assert!(e.line >= 1 && e.column >= 1);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_sandbox_bounds_size_time_and_output() {
    // Size.
    let big = format!(
        "{{% block subject %}}s{{% endblock %}}{{% block text %}}{}{{% endblock %}}",
        "x".repeat(MAX_TEMPLATE_BYTES)
    );
    let err = check_template(&big).unwrap_err();
    assert!(err.message.contains("at most"), "{err}");
    // Time: nested loops over a long list run out of fuel.
    let list = format!("[{}]", vec!["1"; 2000].join(","));
    let slow = format!(
        "{{% block subject %}}{{% for a in {list} %}}{{% for b in {list} %}}{{% endfor %}}{{% endfor %}}{{% endblock %}}{{% block text %}}t{{% endblock %}}"
    );
    let err = check_template(&slow).unwrap_err();
    assert!(err.message.contains("too long"), "{err}");
    // Output: each part is capped.
    let wide = format!("'{}'", "y".repeat(1000));
    let loud = format!(
        "{{% block subject %}}s{{% endblock %}}{{% block text %}}{{% for a in {list} %}}{{{{ {wide} }}}}{{% endfor %}}{{% endblock %}}"
    );
    let err = render(Some(&loud), ChannelType::Email, &finding_new()).unwrap_err();
    assert!(err.message.contains(&MAX_OUTPUT_BYTES.to_string()), "{err}");
    // No file system: there is no loader, and including is refused outright.
    let err = check_template("{% include '/etc/passwd' %}").unwrap_err();
    assert!(err.message.contains("include"));
}
