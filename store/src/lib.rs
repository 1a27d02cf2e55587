//! Stella's durable state.
//!
//! Two ports live here: the relational [`Store`] (PostgreSQL in production, SQLite as the
//! embedded default, one API and one test suite for both) and the [`object`] store (S3 in
//! production, a local folder as the embedded default). The [`Valkey`] pool is here too,
//! so every connection to the outside world is made, and its errors translated, in one
//! crate. This crate holds no business logic: callers pass `now` and decide what errors
//! mean.
//!
//! Tenant isolation: tenant-owned records are only reachable through
//! [`Store::tenant`], which binds the [`TenantId`] into every statement it runs. There
//! is no unscoped way to read another tenant's jobs.
//!
//! Layout:
//! - `db`: connecting, migrating, the [`Store`] and [`TenantScope`] handles;
//! - [`repo`]: one repository per record family (tenants, tokens, jobs and their events,
//!   outbox, idempotency keys, audit log, schedules, advisories, scans, policies, VEX
//!   documents, the events stream, generation counters);
//! - [`mailbox`]: the durable mailbox port as capability traits, its Valkey and embedded
//!   adapters, the acknowledgement batcher;
//! - [`object`]: the object store port, its folder and S3 adapters, content addressing;
//! - `valkey`: the Valkey connection pool;
//! - `ids`: validated identifiers ([`TenantId`], [`JobId`], [`TokenId`]);
//! - `group`: group commit, concurrent single-job reads and writes of the runtime run
//!   as one statement or transaction;
//! - `error`: [`StoreError`], the one error type of this crate;
//! - [`diag`]: benchmark baselines, apart from the production store.

mod db;
pub mod diag;
mod error;
mod group;
mod ids;
pub mod mailbox;
pub mod object;
pub mod repo;
pub mod telemetry;
mod valkey;

pub use db::{Store, TenantScope};
pub use error::{Backend, Result, StoreError};
pub use ids::{
    ChannelId, DeliveryId, ExceptionId, JobId, RolloutId, RuleId, RunId, ScheduleId, TargetId,
    TenantId, TokenId,
};
pub use valkey::{Conn as ValkeyConn, Valkey};
