//! Stella's scan domain as plain functions and types: no I/O, no actix, no clock (time is
//! an argument). The role actors (fetcher, analyzer, evaluator, sealer) are thin wrappers
//! that call this code and the store's ports; everything here is tested directly.
//!
//! Not here: storage, HTTP, scheduling, anything async.
//!
//! Layout:
//! - [`analysis`]: what the analyzer keeps of an SBOM ([`analysis::Analysis`]);
//! - [`canonical`]: canonical JSON (RFC 8785) and SHA-256 digests of what is signed;
//! - [`dsse`]: DSSE envelopes signed and verified with Ed25519, and the key file formats;
//! - [`ecosystem`]: the package ecosystems Stella matches in, and their name rules;
//! - [`error`]: [`InputError`], a rejected document with the JSON pointer of the fault;
//! - `fuzzing` (feature `fuzzing`): the properties the fuzz targets and the corpus replay
//!   test check;
//! - [`export`]: the export formats as streaming writers: CSV (RFC 4180), SARIF 2.1.0 for
//!   GitHub code scanning, `export.json` and `provenance.json`, reproducible `tar.zst`;
//! - [`image`]: container images (docker-archive, OCI archive, OCI layout directory) read
//!   into a filtered root filesystem, their OS and language packages, a CycloneDX or SPDX
//!   SBOM of them;
//! - [`intoto`]: in-toto Statement v1, the payload Stella seals in DSSE envelopes;
//! - [`lattice`]: the K4 lattice that joins claims about a finding;
//! - [`notify`]: the notifier's rules, channels, windows, templates and payloads
//!   (Standard Webhooks, Slack Block Kit, Teams Adaptive Cards);
//! - [`osv`]: OSV advisories, normalized, and untrusted collections read within limits;
//! - [`policy`]: TOML policies and packs, CVSS scoring, pass / warn / block with explain
//!   traces;
//! - [`purl`]: package URLs parsed, made canonical and turned into [`PackageKey`]s;
//! - [`rollout`]: rollouts of a policy pack: waves of tenants and their gates;
//! - [`sbom`]: CycloneDX and SPDX JSON documents read into one component inventory;
//! - [`scan`]: the advisory index, findings, verdicts and the inputs hash;
//! - [`shadow`]: verdict diffs of shadow evaluations, per finding and per scan;
//! - [`version`]: version ordering per ecosystem and OSV affected-range evaluation;
//! - [`vex`]: OpenVEX, CycloneDX VEX and CSAF 2.0 statements and the claims they make.

pub mod analysis;
pub mod canonical;
pub mod dsse;
pub mod ecosystem;
pub mod error;
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod image;
pub mod intoto;
pub mod lattice;
pub mod notify;
pub mod osv;
pub mod policy;
pub mod purl;
pub mod rollout;
pub mod sbom;
pub mod scan;
pub mod shadow;
pub mod version;
pub mod vex;

pub use ecosystem::{Ecosystem, PackageKey};
pub use error::InputError;
pub use purl::Purl;
pub use sbom::{Component, ComponentStatus, Sbom, SbomFormat};
