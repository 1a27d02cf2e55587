//! Rollouts of a policy pack, as plain data and decisions: which tenants each wave holds
//! (explicit lists or a percentage with a deterministic assignment) and whether a wave's
//! gate holds on its shadow diff. Time, the store and the jobs are the callers'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::InputError;
use crate::shadow::DiffSummary;

/// Which tenants a wave holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// A name to show (default `wave-<n>`, the first `canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// These tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// The tenants carrying every one of these labels (that no earlier wave took).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Up to this share (0–100) of every tenant, counted cumulatively over the waves and
    /// assigned by a hash of the pack name and the tenant id: the same tenants are early
    /// in every rollout of the pack, and a later wave holds the earlier waves' tenants'
    /// complement. 100 takes every tenant no earlier wave took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// This wave's gate instead of the rollout's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

/// What must hold of a wave's shadow diff before it is activated. Every condition given
/// must hold; too few scans is *inconclusive*, which does not promote either.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Scans that would become blocked, as a share (0–100) of the wave's scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_newly_blocked_percent: Option<f64>,
    /// Targets that could not be evaluated (default 0: any error fails the gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
    /// At least this many scans evaluated in shadow (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_scans: Option<u64>,
    /// A person approves the wave (`rollouts resume`) after the gate's numbers hold.
    #[serde(default)]
    pub manual_approval: bool,
}

/// A rollout as its creator declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    pub pack: String,
    pub version: u64,
    /// In order; the first is the canary.
    pub waves: Vec<WaveSpec>,
    /// Every wave's gate, unless the wave names its own.
    #[serde(default)]
    pub gate: Gate,
    /// How long an activated wave bakes before the next one starts (default one hour).
    #[serde(default = "default_bake")]
    pub bake_seconds: u64,
}

fn default_bake() -> u64 {
    3600
}

/// The longest bake time: 30 days.
pub const MAX_BAKE_SECONDS: u64 = 30 * 86_400;

/// The most waves a rollout may have.
pub const MAX_WAVES: usize = 50;

/// How a gate judged a wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum GateResult {
    Passed,
    Failed {
        reasons: Vec<String>,
    },
    Inconclusive {
        reasons: Vec<String>,
    },
    /// The numbers hold; a person has to approve.
    AwaitingApproval,
}

impl RolloutSpec {
    /// Checks what decoding cannot: waves given, shares and thresholds in range.
    pub fn check(&self) -> Result<(), InputError> {
        if self.waves.is_empty() {
            return Err(InputError::new(
                "/waves",
                "a rollout needs at least one wave",
            ));
        }
        if self.waves.len() > MAX_WAVES {
            return Err(InputError::new(
                "/waves",
                format!("at most {MAX_WAVES} waves"),
            ));
        }
        if self.bake_seconds > MAX_BAKE_SECONDS {
            return Err(InputError::new(
                "/bake_seconds",
                format!("at most {MAX_BAKE_SECONDS} (30 days)"),
            ));
        }
        let mut last_percent = 0.0;
        for (i, wave) in self.waves.iter().enumerate() {
            let selectors = usize::from(!wave.tenants.is_empty())
                + usize::from(!wave.labels.is_empty())
                + usize::from(wave.percent.is_some());
            if selectors != 1 {
                return Err(InputError::new(
                    format!("/waves/{i}"),
                    "a wave names one of `tenants`, `labels` or a `percent`",
                ));
            }
            if let Some(p) = wave.percent {
                if !(p > 0.0 && p <= 100.0) || p < last_percent {
                    return Err(InputError::new(
                        format!("/waves/{i}/percent"),
                        "a percent is in (0, 100] and not below an earlier wave's \
                         (shares are cumulative)",
                    ));
                }
                last_percent = p;
            }
            if let Some(gate) = &wave.gate {
                gate.check(&format!("/waves/{i}/gate"))?;
            }
        }
        self.gate.check("/gate")
    }

    /// The gate of wave `i`.
    pub fn gate_of(&self, i: usize) -> &Gate {
        self.waves
            .get(i)
            .and_then(|w| w.gate.as_ref())
            .unwrap_or(&self.gate)
    }

    /// The name of wave `i`.
    pub fn wave_name(&self, i: usize) -> String {
        match self.waves.get(i).and_then(|w| w.name.clone()) {
            Some(name) => name,
            None if i == 0 => "canary".into(),
            None => format!("wave-{}", i + 1),
        }
    }

    /// Assigns `tenants` (every tenant there is, with its labels) to the waves: each
    /// tenant at most once, in the first wave that selects it. A tenant a list names that
    /// does not exist, or that two lists name, is an error; tenants no wave selects are
    /// not in the rollout.
    pub fn assign(&self, tenants: &[TenantInfo]) -> Result<Vec<Vec<String>>, InputError> {
        let mut taken: std::collections::BTreeSet<&str> = Default::default();
        let mut waves = Vec::with_capacity(self.waves.len());
        for (i, wave) in self.waves.iter().enumerate() {
            let mut members = Vec::new();
            for (j, tenant) in wave.tenants.iter().enumerate() {
                if !tenants.iter().any(|t| &t.id == tenant) {
                    return Err(InputError::new(
                        format!("/waves/{i}/tenants/{j}"),
                        format!("no tenant {tenant:?}"),
                    ));
                }
                if !taken.insert(tenant) {
                    return Err(InputError::new(
                        format!("/waves/{i}/tenants/{j}"),
                        format!("tenant {tenant:?} is in an earlier wave"),
                    ));
                }
                members.push(tenant.clone());
            }
            if !wave.labels.is_empty() {
                for tenant in tenants {
                    let carries = wave
                        .labels
                        .iter()
                        .all(|(k, v)| tenant.labels.get(k) == Some(v));
                    if carries && taken.insert(&tenant.id) {
                        members.push(tenant.id.clone());
                    }
                }
            }
            if let Some(percent) = wave.percent {
                for tenant in tenants {
                    if bucket(&self.pack, &tenant.id) < percent && taken.insert(&tenant.id) {
                        members.push(tenant.id.clone());
                    }
                }
            }
            members.sort();
            waves.push(members);
        }
        Ok(waves)
    }
}

/// A tenant as waves select it: its id and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

impl TenantInfo {
    /// A tenant without labels.
    pub fn named(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            labels: BTreeMap::new(),
        }
    }
}

/// A tenant's place in [0, 100) for a pack's percentage waves: the first 8 bytes of
/// sha256(pack, NUL, tenant) as a fraction.
pub fn bucket(pack: &str, tenant: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(pack.as_bytes());
    hasher.update([0]);
    hasher.update(tenant.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits, so the fraction is exact in an f64 and below 1.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

impl Gate {
    /// Checks the thresholds are in range; `at` is the gate's JSON pointer in what it
    /// came in.
    pub fn check(&self, at: &str) -> Result<(), InputError> {
        if let Some(p) = self.max_newly_blocked_percent {
            if !(0.0..=100.0).contains(&p) {
                return Err(InputError::new(
                    format!("{at}/max_newly_blocked_percent"),
                    "a share is between 0 and 100",
                ));
            }
        }
        Ok(())
    }

    /// Judges a wave's shadow diff. `approved`: a person approved this wave.
    pub fn judge(&self, summary: &DiffSummary, approved: bool) -> GateResult {
        let mut failed = Vec::new();
        let max_errors = self.max_errors.unwrap_or(0);
        if summary.errors > max_errors {
            failed.push(format!(
                "{} targets could not be evaluated (at most {max_errors} allowed)",
                summary.errors
            ));
        }
        let min_scans = self.min_scans.unwrap_or(1);
        if summary.scans < min_scans {
            if !failed.is_empty() {
                return GateResult::Failed { reasons: failed };
            }
            return GateResult::Inconclusive {
                reasons: vec![format!(
                    "{} scans evaluated; the gate needs at least {min_scans}",
                    summary.scans
                )],
            };
        }
        if let Some(max) = self.max_newly_blocked_percent {
            let share = summary.newly_blocked_scans as f64 * 100.0 / summary.scans as f64;
            if share > max {
                failed.push(format!(
                    "{} of {} scans would become blocked ({share:.1} %, at most {max} % allowed)",
                    summary.newly_blocked_scans, summary.scans
                ));
            }
        }
        if !failed.is_empty() {
            GateResult::Failed { reasons: failed }
        } else if self.manual_approval && !approved {
            GateResult::AwaitingApproval
        } else {
            GateResult::Passed
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(waves: serde_json::Value) -> RolloutSpec {
        serde_json::from_value(serde_json::json!({
            "pack": "baseline", "version": 2, "waves": waves,
            "gate": {"max_newly_blocked_percent": 5.0}
        }))
        .unwrap()
    }

    #[test]
    fn waves_take_listed_tenants_then_cumulative_shares_each_tenant_once() {
        let tenants: Vec<TenantInfo> = (0..1000)
            .map(|i| TenantInfo {
                id: format!("t{i:04}"),
                labels: [(
                    "tier".to_owned(),
                    if i % 100 == 3 { "gold" } else { "std" }.to_owned(),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let spec = spec(serde_json::json!([
            {"tenants": ["t0007", "t0500"]},
            {"labels": {"tier": "gold"}},
            {"percent": 10.0},
            {"percent": 100.0}
        ]));
        spec.check().unwrap();
        let waves = spec.assign(&tenants).unwrap();
        assert_eq!(waves[0], ["t0007", "t0500"]);
        assert_eq!(waves[1].len(), 10, "the gold tier: {:?}", waves[1]);
        assert!(waves[1].iter().all(|t| t.ends_with("03")));
        let total: usize = waves.iter().map(Vec::len).sum();
        assert_eq!(total, 1000, "every tenant once");
        // About 10 % in the percentage wave, deterministically.
        assert!((60..=130).contains(&waves[2].len()), "{}", waves[2].len());
        assert_eq!(spec.assign(&tenants).unwrap(), waves);
        assert!(!waves[2].contains(&"t0007".to_owned()));
        assert_eq!(spec.wave_name(0), "canary");
        assert_eq!(spec.wave_name(2), "wave-3");
    }

    #[test]
    fn bad_specs_name_the_place() {
        let unknown = spec(serde_json::json!([{"tenants": ["nope"]}]));
        let err = unknown.assign(&[TenantInfo::named("a")]).unwrap_err();
        assert_eq!(err.pointer, "/waves/0/tenants/0");
        let twice = spec(serde_json::json!([{"tenants": ["a"]}, {"tenants": ["a"]}]));
        assert_eq!(
            twice.assign(&[TenantInfo::named("a")]).unwrap_err().pointer,
            "/waves/1/tenants/0"
        );
        let both = spec(serde_json::json!([{"tenants": ["a"], "percent": 5}]));
        assert_eq!(both.check().unwrap_err().pointer, "/waves/0");
        let neither = spec(serde_json::json!([{"name": "empty"}]));
        assert_eq!(neither.check().unwrap_err().pointer, "/waves/0");
        let shrinking = spec(serde_json::json!([{"percent": 50}, {"percent": 10}]));
        assert_eq!(shrinking.check().unwrap_err().pointer, "/waves/1/percent");
        assert_eq!(
            spec(serde_json::json!([])).check().unwrap_err().pointer,
            "/waves"
        );
    }

    #[test]
    fn a_gate_fails_on_newly_blocked_or_errors_and_is_inconclusive_on_too_few_scans() {
        let gate = Gate {
            max_newly_blocked_percent: Some(5.0),
            min_scans: Some(10),
            ..Gate::default()
        };
        let mut summary = DiffSummary {
            scans: 40,
            newly_blocked_scans: 2,
            ..DiffSummary::default()
        };
        assert_eq!(gate.judge(&summary, false), GateResult::Passed);
        summary.newly_blocked_scans = 3;
        let GateResult::Failed { reasons } = gate.judge(&summary, false) else {
            panic!("7.5 % is above 5 %");
        };
        assert!(reasons[0].contains("3 of 40"), "{reasons:?}");
        summary.scans = 4;
        summary.newly_blocked_scans = 0;
        assert!(matches!(
            gate.judge(&summary, false),
            GateResult::Inconclusive { .. }
        ));
        summary.scans = 40;
        summary.errors = 1;
        assert!(matches!(
            gate.judge(&summary, false),
            GateResult::Failed { .. }
        ));
        let manual = Gate {
            manual_approval: true,
            ..Gate::default()
        };
        let fine = DiffSummary {
            scans: 1,
            ..DiffSummary::default()
        };
        assert_eq!(manual.judge(&fine, false), GateResult::AwaitingApproval);
        assert_eq!(manual.judge(&fine, true), GateResult::Passed);
    }
}
