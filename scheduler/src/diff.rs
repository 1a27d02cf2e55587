//! What changed between two scans of a target: findings new in the latest scan,
//! resolved since the previous one, and changed (same vulnerability and component, new
//! disposition). A finding is identified by (vulnerability id, component purl).

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// One finding, as the diff sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub vulnerability_id: String,
    pub purl: String,
    pub disposition: String,
    /// `critical`, `high`, `medium`, `low`, `none`, or `unknown` (not compared: carried
    /// into the events a diff makes, for notification rules).
    pub severity: String,
    /// What VEX says: `not_affected`, `affected`, `fixed`, or empty (not compared).
    pub vex_status: String,
}

/// Items listed per category at most; the counts are always complete.
const LISTED: usize = 200;

/// The diff of `current` against `previous` (`None`: the target had no earlier scan, so
/// every finding is new), as stored with the run target.
pub fn diff(previous: Option<&[Finding]>, current: &[Finding]) -> Value {
    let key = |f: &Finding| (f.vulnerability_id.clone(), f.purl.clone());
    let before: BTreeMap<_, _> = previous
        .unwrap_or_default()
        .iter()
        .map(|f| (key(f), f))
        .collect();
    let after: BTreeMap<_, _> = current.iter().map(|f| (key(f), f)).collect();
    let item = |f: &Finding| {
        let mut v = json!({"vulnerability_id": f.vulnerability_id, "purl": f.purl, "disposition": f.disposition, "severity": f.severity});
        if !f.vex_status.is_empty() {
            v["vex_status"] = json!(f.vex_status);
        }
        v
    };
    let new: Vec<Value> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(_, f)| item(f))
        .collect();
    let resolved: Vec<Value> = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(_, f)| item(f))
        .collect();
    let changed: Vec<Value> = after
        .iter()
        .filter_map(|(k, now)| {
            let was = before.get(k)?;
            (was.disposition != now.disposition).then(|| {
                json!({
                    "vulnerability_id": now.vulnerability_id,
                    "purl": now.purl,
                    "from": was.disposition,
                    "to": now.disposition,
                })
            })
        })
        .collect();
    json!({
        "baseline": previous.is_some(),
        "new_count": new.len(),
        "resolved_count": resolved.len(),
        "changed_count": changed.len(),
        "new": new.into_iter().take(LISTED).collect::<Vec<_>>(),
        "resolved": resolved.into_iter().take(LISTED).collect::<Vec<_>>(),
        "changed": changed.into_iter().take(LISTED).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: &str, purl: &str, disposition: &str) -> Finding {
        Finding {
            vulnerability_id: id.into(),
            purl: purl.into(),
            disposition: disposition.into(),
            severity: "high".into(),
            vex_status: String::new(),
        }
    }

    #[test]
    fn new_resolved_and_changed_findings() {
        let before = [
            f("GO-1", "pkg:golang/a@v1", "block"),
            f("GO-2", "pkg:golang/b@v1", "warn"),
            f("GO-3", "pkg:golang/c@v1", "pass"),
        ];
        let after = [
            f("GO-2", "pkg:golang/b@v1", "pass"),
            f("GO-3", "pkg:golang/c@v1", "pass"),
            f("GO-4", "pkg:golang/d@v1", "block"),
        ];
        let d = diff(Some(&before), &after);
        assert_eq!(d["new_count"], 1);
        assert_eq!(d["new"][0]["vulnerability_id"], "GO-4");
        assert_eq!(d["resolved_count"], 1);
        assert_eq!(d["resolved"][0]["vulnerability_id"], "GO-1");
        assert_eq!(d["changed_count"], 1);
        assert_eq!(d["changed"][0]["from"], "warn");
        assert_eq!(d["changed"][0]["to"], "pass");
        assert_eq!(d["baseline"], true);
    }

    #[test]
    fn without_a_previous_scan_everything_is_new() {
        let d = diff(None, &[f("GO-1", "pkg:golang/a@v1", "block")]);
        assert_eq!(d["new_count"], 1);
        assert_eq!(d["baseline"], false);
        assert_eq!(diff(Some(&[]), &[])["new_count"], 0);
    }
}
