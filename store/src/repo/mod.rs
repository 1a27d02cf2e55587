//! Repositories: one per record family. Each holds a reference to the [`Store`] and, for
//! tenant-owned records, the tenant id it binds into every statement.

mod advisories;
mod audit;
mod effects;
mod events;
mod exceptions;
mod exports;
mod generations;
mod idempotency;
mod images;
mod jobs;
mod mirror;
mod notify;
mod outbox;
mod policies;
mod rollouts;
mod scans;
mod schedules;
mod tenants;
mod tokens;
mod vex;

pub use advisories::{
    Advisories, AdvisoryRecord, ImportSummary, ObservationRecord, StoredAdvisory,
};
pub use audit::{Audit, AuditEntry, AuditRecord};
pub use effects::Effect;
pub use events::EVENT_ORDER_LOCK;
pub(crate) use events::{insert_event, insert_event_ordered, lock_event_order};
pub use events::{EventRecord, Events, NewEvent};
pub use exceptions::{
    expire_due as expire_due_exceptions, Decision as ExceptionDecision, ExceptionFilter,
    ExceptionRecord, Exceptions, NewException, EXCEPTION_KINDS, MAX_EXCEPTION_DAYS,
};
pub use exports::{
    is_profile_name, ExportFileRecord, ExportFiles, ExportProfileRecord, ExportProfiles,
    ExportRunRecord, ExportRuns, NewExportProfile,
};
pub(crate) use generations::bump_generation;
pub use generations::generation;
pub use idempotency::Idempotency;
pub use images::{ImageRecord, Images};
pub(crate) use jobs::{get_jobs, insert_jobs, JobKey};
pub use jobs::{
    Job, JobChange, JobEvent, JobFilter, JobState, Jobs, NewJob, NewMessage, NewTenantJob,
    Submitted, Transition,
};
pub use mirror::{
    AdvisoryKey, Change, Generations, MirrorAdvisory, MirrorImport, MirrorImportOutcome,
    MirrorImportRecord, MirrorImports, MirrorSource, MirrorVex, QuarantineRecord, VexKey,
};
pub(crate) use notify::{insert_deliveries, insert_digest_items};
pub use notify::{
    is_name as is_notify_name, AttemptEnd, AttemptRecord, ChannelRecord, DeliveryFilter,
    DeliveryRecord, DigestItem, NewDelivery, NewDigestItem, Notify, NotifyEventRow, OpenDigest,
    RuleRecord, TemplateRecord,
};
pub use outbox::{Outbox, OutboxRow};
pub use policies::{
    Actor, Policies, PolicyRecord, PolicyStatus, PolicyTransition, TransitionRecord,
};
pub use rollouts::{
    phase as rollout_phase, state as rollout_state, wave_name, LeaderMove, NewRollout, PackRecord,
    Packs, RolloutRecord, RolloutTenantRecord, RolloutTransition, Rollouts, ShadowRecord,
    SCHEDULER_IDENTITY,
};
pub use scans::{
    FindingRecord, FindingRow, NewFinding, SbomRecord, ScanRecord, ScanStatus, Scans, VerdictRecord,
};
pub use schedules::{
    Applied, EndedRunTarget, ImpactedTarget, Lease, NewRun, RunRecord, RunTargetRecord, RunUpdate,
    Runs, ScheduleAdvance, ScheduleRecord, SchedulerChanges, Schedules, Scheduling, TargetOutcome,
    TargetRecord, Targets, SCHEDULER_LEASE,
};
pub use tenants::{Tenant, TenantStatus, Tenants, MAX_TENANT_LABELS};
pub use tokens::{NewToken, TokenRecord, Tokens, TOKEN_PREFIX};
pub use vex::{VexDocumentRecord, VexDocuments};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, StoreError};
#[allow(unused_imports)]
use crate::Store;
use crate::TenantId;

/// One page of a list, ordered by a stable key; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Largest page any list returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 500;

/// A page size: 0 is refused (it would read as "no page" and return one item), anything
/// over [`MAX_PAGE`] is capped.
pub(crate) fn check_limit(limit: u32) -> Result<i64> {
    if limit == 0 {
        return Err(StoreError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    Ok(i64::from(limit.min(MAX_PAGE)))
}

/// A list cursor that is a key of the list (an id or a name): one that `valid` refuses
/// was never a `next_cursor`, and is refused rather than read as a position.
pub(crate) fn text_cursor<'c>(
    cursor: Option<&'c str>,
    what: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<&'c str> {
    match cursor {
        None => Ok(""),
        Some(text) if valid(text) => Ok(text),
        Some(text) => Err(StoreError::Invalid(format!(
            "cursor {text:?} is not a valid {what} cursor"
        ))),
    }
}

/// A list cursor that is a number (an ordinal, version or sequence); `start` without one.
pub(crate) fn numeric_cursor(cursor: Option<&str>, start: i64, what: &str) -> Result<i64> {
    match cursor {
        None => Ok(start),
        Some(text) => text.parse().map_err(|_| {
            StoreError::Invalid(format!("cursor {text:?} is not a valid {what} cursor"))
        }),
    }
}

/// Builds a page from `limit + 1` fetched rows: the extra row only proves a next page.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more {
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// The `tenant_id` of global rows (VEX documents from vendors, advisory events). Never a
/// tenant's id: tenant ids are non-empty.
pub(crate) const GLOBAL: &str = "";

/// The `tenant_id` column of a row owned by `tenant`, or global.
pub(crate) fn owner_column(tenant: Option<&TenantId>) -> &str {
    tenant.map_or(GLOBAL, TenantId::as_str)
}

/// A `tenant_id` column read back: `None` for a global row.
pub(crate) fn owner_of(column: String) -> Option<String> {
    (!column.is_empty()).then_some(column)
}

/// A JSON column's text.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// A JSON column read back; `what` names it in the error.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} JSON: {e}")))
}
