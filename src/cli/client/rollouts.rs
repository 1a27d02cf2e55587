//! `stella rollouts`: rollouts of a policy pack through waves of tenants (administrator
//! token; a tenant token may `get` its own part).

use clap::Subcommand;
use serde_json::{json, Value};

use super::http::{segment, Client, ClientError, ExitKind};
use super::{Run, Subcommands};
use crate::cli::args::PageArgs;
use crate::cli::output::{errln, Format};

const COLUMNS: &[&str] = &[
    "id",
    "pack",
    "version",
    "state",
    "wave",
    "phase",
    "updated_at",
];

pub(crate) type Rollouts = Subcommands<Action>;

#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Start a rollout of a pack version: `--wave` once per wave, the first is the
    /// canary; each wave is shadowed, gated, activated and baked before the next.
    Create(Create),
    /// Every rollout, newest first.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// One rollout: its waves with their gates and progress, and each tenant's state.
    Get {
        /// The rollout id.
        id: String,
    },
    /// Pause a running rollout.
    Pause(Act),
    /// Resume a paused rollout: approves a wave waiting for approval, or shadows a wave
    /// whose gate did not hold again (with a new gate if given).
    Resume(Resume),
    /// Abort a rollout and roll every activated tenant back to its previous pack.
    Abort(Act),
}

/// A rollout's declaration.
#[derive(Debug, clap::Args)]
pub(crate) struct Create {
    /// The pack version, `<name>@<version>`.
    #[arg(long)]
    pack: String,
    /// A wave: tenants separated by commas (`acme,globex`), the tenants carrying labels
    /// (`env=prod,tier=gold`), or a cumulative share of all tenants (`10%`). Once per
    /// wave, in order.
    #[arg(long = "wave", required = true)]
    waves: Vec<String>,
    #[command(flatten)]
    gate: GateArgs,
    /// How long each activated wave bakes before the next starts (`90s`, `30m`, `2h`,
    /// `1d`).
    #[arg(long, default_value = "1h")]
    bake: String,
    /// Why; kept with the rollout.
    #[arg(long)]
    reason: String,
}

/// A gate's conditions.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct GateArgs {
    /// The gate fails when more than this share (0-100) of a wave's scans would become
    /// blocked.
    #[arg(long)]
    max_newly_blocked_percent: Option<f64>,
    /// Targets that may fail to evaluate (default 0).
    #[arg(long)]
    max_errors: Option<u64>,
    /// Fewer scans evaluated than this is inconclusive (default 1).
    #[arg(long)]
    min_scans: Option<u64>,
    /// A person approves each wave (`rollouts resume`) once its numbers hold.
    #[arg(long)]
    manual_approval: bool,
}

impl GateArgs {
    fn given(&self) -> bool {
        self.max_newly_blocked_percent.is_some()
            || self.max_errors.is_some()
            || self.min_scans.is_some()
            || self.manual_approval
    }

    fn json(&self) -> Value {
        let mut gate = json!({ "manual_approval": self.manual_approval });
        if let Some(p) = self.max_newly_blocked_percent {
            gate["max_newly_blocked_percent"] = json!(p);
        }
        if let Some(e) = self.max_errors {
            gate["max_errors"] = json!(e);
        }
        if let Some(m) = self.min_scans {
            gate["min_scans"] = json!(m);
        }
        gate
    }
}

/// A move with its reason.
#[derive(Debug, clap::Args)]
pub(crate) struct Act {
    /// The rollout id.
    id: String,
    /// Why; kept with the move.
    #[arg(long)]
    reason: String,
}

/// A resume, optionally with a new gate.
#[derive(Debug, clap::Args)]
pub(crate) struct Resume {
    /// The rollout id.
    id: String,
    /// Why; kept with the move.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    gate: GateArgs,
}

fn invalid(message: String) -> ClientError {
    ClientError::new(ExitKind::Invalid, message)
}

/// `90s`, `30m`, `2h`, `1d` or plain seconds.
fn seconds(text: &str) -> Result<u64, ClientError> {
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = number
        .parse()
        .map_err(|_| invalid(format!("--bake {text:?}: give a number with s, m, h or d")))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(invalid(format!(
                "--bake {text:?}: the unit is s, m, h or d"
            )))
        }
    };
    Ok(n * factor)
}

fn wave(text: &str) -> Result<Value, ClientError> {
    if let Some(percent) = text.strip_suffix('%') {
        let p: f64 = percent
            .trim()
            .parse()
            .map_err(|_| invalid(format!("--wave {text:?}: a share is a number and %")))?;
        return Ok(json!({ "percent": p }));
    }
    if text.contains('=') {
        let mut labels = serde_json::Map::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("--wave {text:?}: labels are key=value")))?;
            labels.insert(key.to_owned(), json!(value));
        }
        return Ok(json!({ "labels": labels }));
    }
    let tenants: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tenants.is_empty() {
        return Err(invalid(format!("--wave {text:?} names no tenant")));
    }
    Ok(json!({ "tenants": tenants }))
}

impl Run for Action {
    fn run(&self, client: &Client) -> Result<(), ClientError> {
        match self {
            Self::Create(create) => {
                let (name, version) = create
                    .pack
                    .rsplit_once('@')
                    .and_then(|(n, v)| Some((n, v.parse::<u64>().ok()?)))
                    .ok_or_else(|| invalid("--pack: give it as <name>@<version>".into()))?;
                let waves = create
                    .waves
                    .iter()
                    .map(|w| wave(w))
                    .collect::<Result<Vec<_>, _>>()?;
                let body = json!({
                    "pack": name,
                    "version": version,
                    "waves": waves,
                    "gate": create.gate.json(),
                    "bake_seconds": seconds(&create.bake)?,
                    "reason": create.reason,
                });
                show(client, &client.post("/rollouts", &body)?);
            }
            Self::List { page } => {
                client.print(&client.list("/rollouts", page.query(), page.all)?, COLUMNS)
            }
            Self::Get { id } => show(
                client,
                &client.get(&format!("/rollouts/{}", segment(id)), &[])?,
            ),
            Self::Pause(act) => act.run(client, "pause")?,
            Self::Abort(act) => act.run(client, "abort")?,
            Self::Resume(resume) => {
                let mut body = json!({ "reason": resume.reason });
                if resume.gate.given() {
                    body["gate"] = resume.gate.json();
                }
                let path = format!("/rollouts/{}/resume", segment(&resume.id));
                show(client, &client.post(&path, &body)?);
            }
        }
        Ok(())
    }
}

impl Act {
    fn run(&self, client: &Client, action: &str) -> Result<(), ClientError> {
        let path = format!("/rollouts/{}/{action}", segment(&self.id));
        show(
            client,
            &client.post(&path, &json!({ "reason": self.reason }))?,
        );
        Ok(())
    }
}

/// A rollout as tables: its waves (gate, progress) and its tenants.
fn show(client: &Client, rollout: &Value) {
    if client.format == Format::Json {
        client.print(rollout, &[]);
        return;
    }
    errln!(
        "# rollout {} of {}@{}: {} (wave {}, {})",
        rollout["id"].as_str().unwrap_or("?"),
        rollout["pack"].as_str().unwrap_or("?"),
        rollout["version"],
        rollout["state"].as_str().unwrap_or("?"),
        rollout["wave"],
        rollout["phase"].as_str().unwrap_or("?"),
    );
    if let Some(gate) = rollout["reason"].get("gate") {
        let reasons = gate["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        errln!(
            "# last gate: {}{}",
            gate["result"].as_str().unwrap_or("?"),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {reasons}")
            }
        );
    }
    let waves = rollout["waves"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Value> = waves
        .iter()
        .map(|w| {
            let tenants = w["tenants"].as_array().map_or(0, Vec::len);
            let activated = w["tenants"].as_array().map_or(0, |t| {
                t.iter().filter(|t| !t["activated_at"].is_null()).count()
            });
            let gate = &w["gate"];
            let mut conditions = Vec::new();
            if let Some(p) = gate["max_newly_blocked_percent"].as_f64() {
                conditions.push(format!("newly blocked <= {p}%"));
            }
            conditions.push(format!(
                "errors <= {}",
                gate["max_errors"].as_u64().unwrap_or(0)
            ));
            conditions.push(format!(
                "scans >= {}",
                gate["min_scans"].as_u64().unwrap_or(1)
            ));
            if gate["manual_approval"] == json!(true) {
                conditions.push("manual approval".into());
            }
            json!({
                "wave": w["index"],
                "name": w["name"],
                "state": w["state"],
                "tenants": tenants,
                "activated": format!("{activated}/{tenants}"),
                "scans": w["summary"]["scans"],
                "newly_blocked": w["summary"]["newly_blocked_scans"],
                "errors": w["summary"]["errors"],
                "gate": conditions.join(", "),
            })
        })
        .collect();
    client.print(
        &json!({ "items": rows }),
        &[
            "wave",
            "name",
            "state",
            "tenants",
            "activated",
            "scans",
            "newly_blocked",
            "errors",
            "gate",
        ],
    );
    let tenants: Vec<Value> = waves
        .iter()
        .flat_map(|w| {
            w["tenants"].as_array().cloned().unwrap_or_default().into_iter().map(move |t| {
                json!({
                    "wave": w["index"],
                    "tenant": t["tenant"],
                    "previous": match (t["previous_pack"].as_str(), t["previous_version"].as_u64()) {
                        (Some(p), Some(v)) => format!("{p}@{v}"),
                        _ => "-".into(),
                    },
                    "scans": t["shadow"]["summary"]["scans"],
                    "newly_blocked": t["shadow"]["summary"]["newly_blocked_scans"],
                    "activated_at": t["activated_at"],
                    "rolled_back_at": t["rolled_back_at"],
                })
            })
        })
        .collect();
    client.print(
        &json!({ "items": tenants }),
        &[
            "wave",
            "tenant",
            "previous",
            "scans",
            "newly_blocked",
            "activated_at",
            "rolled_back_at",
        ],
    );
}
