//! Mirror bundles on the receiving side: importing a `mirror:full` or `mirror:delta`
//! bundle written by another instance's exporter (`export/`), on an instance with no
//! network. Not a job kind: an administrator runs it (`stella mirror import`) against the
//! configured store, and it is done when the command returns.
//!
//! An import, in order:
//! 1. reads the bundle once with `stella export verify`'s reader
//!    ([`stella_domain::export::verify::read_bundle_keeping`]: hostile entries refused
//!    before their bytes are read), spooling its members to a temporary folder and
//!    hashing the file as it goes;
//! 2. verifies it with the same check as `stella export verify --key`, with the
//!    configured trusted keys (`mirror.trusted_keys`;
//!    [`stella_domain::export::verify::accept`]): every member against `export.json`,
//!    nothing unlisted, the provenance, both signatures. A bundle that fails (or is not
//!    a readable export) is **quarantined**: kept as the object
//!    `mirror/quarantine/<sha256>.tar.zst` with a row saying which file and why, and
//!    nothing of it is imported;
//! 3. reads every record (a record this version cannot read refuses the bundle);
//! 4. commits it in one transaction ([`stella_store::repo::MirrorImports::import`]):
//!    versions only move forward per origin (the exporting key), unless forced with a
//!    reason (audited); a delta needs its base imported here first.
//!
//! Layout: this file, and `import` (the use case).

mod import;

pub use import::{import_bundle, quarantine_key, ImportOptions, ImportReport, MirrorImportError};
