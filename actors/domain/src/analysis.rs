//! What the analyzer keeps of an SBOM: its format, summary, the context the evaluator
//! needs and its matchable components. A pure function of the SBOM's bytes, so an
//! analysis cached in one place equals the one stored in another.

use serde::{Deserialize, Serialize};

use crate::sbom::{self, SbomSummary};
use crate::scan::{SbomContext, ScanComponent};

/// What the analyzer keeps of an SBOM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub format: String,
    pub spec_version: String,
    pub summary: SbomSummary,
    pub context: SbomContext,
    pub components: Vec<ScanComponent>,
}

impl Analysis {
    /// Analyzes SBOM bytes (CycloneDX or SPDX JSON).
    pub fn of(bytes: &[u8]) -> Result<Self, crate::InputError> {
        Ok(Self::from_sbom(sbom::parse(bytes)?))
    }

    /// [`Analysis::of_parsed`], consuming the inventory: its strings move into the
    /// analysis, so the two are never whole in memory at once (a 200,000-component SBOM's
    /// inventory is a few hundred megabytes).
    pub fn from_sbom(parsed: sbom::Sbom) -> Self {
        Self {
            format: parsed.format.to_string(),
            spec_version: parsed.spec_version.clone(),
            summary: parsed.summary(),
            context: SbomContext::of(&parsed),
            components: ScanComponent::all_from(parsed),
        }
    }

    /// How much the analysis holds, for the [`AnalysisCache`]'s budget: its components.
    pub fn weight(&self) -> usize {
        self.components.len().max(1)
    }

    pub fn of_parsed(parsed: &sbom::Sbom) -> Self {
        Self {
            format: parsed.format.to_string(),
            spec_version: parsed.spec_version.clone(),
            summary: parsed.summary(),
            context: SbomContext::of(parsed),
            components: ScanComponent::all_of(parsed),
        }
    }
}
