//! The scan kind's per-process caches: the analyses of SBOMs parsed here (the hand-off
//! from intake to the steps) and the advisory index of the store's current generation.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use stella_domain::analysis::Analysis;
use stella_domain::osv::Advisory;
use stella_domain::scan::{AdvisoryIndex, ScanComponent};
use stella_store::{Store, StoreError};
use tokio::sync::Mutex;

/// The analyses of the SBOMs this process parsed last, by SBOM digest (hex SHA-256): the
/// hand-off from the parse at submission to the steps (see the module docs).
///
/// Bounded by what the analyses hold (their components, [`Analysis::weight`]) as well as
/// by their number: sixteen analyses of 200,000-component SBOMs held 1.6 GB. An analysis
/// heavier than the whole budget is not kept (its scan reads the store instead), and
/// `evaluate`, the last step that needs it, takes it out, so an idle process holds none.
#[derive(Debug)]
pub struct AnalysisCache {
    budget: usize,
    recent: std::sync::Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Oldest first.
    entries: VecDeque<(String, Arc<Analysis>)>,
    weight: usize,
}

impl Recent {
    fn remove(&mut self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        let at = self.entries.iter().position(|(d, _)| d == sbom_sha256)?;
        let (_, analysis) = self.entries.remove(at)?;
        self.weight -= analysis.weight();
        Some(analysis)
    }
}

impl Default for AnalysisCache {
    fn default() -> Self {
        Self::with_budget(Self::BUDGET)
    }
}

impl AnalysisCache {
    /// Components held at most: the largest SBOM `api.max_sbom_components` admits by
    /// default (200,000), about 100 MB of analysis, or many smaller ones.
    pub const BUDGET: usize = 200_000;
    /// Analyses held at most, however small: a handful covers the scans in flight.
    const ENTRIES: usize = 16;

    pub fn with_budget(components: usize) -> Self {
        Self {
            budget: components,
            recent: std::sync::Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, sbom_sha256: &str, analysis: Arc<Analysis>) {
        let mut recent = self.lock();
        recent.remove(sbom_sha256);
        let weight = analysis.weight();
        if weight > self.budget {
            return;
        }
        while recent.entries.len() >= Self::ENTRIES || recent.weight + weight > self.budget {
            let Some((_, oldest)) = recent.entries.pop_front() else {
                break;
            };
            recent.weight -= oldest.weight();
        }
        recent.weight += weight;
        recent.entries.push_back((sbom_sha256.to_owned(), analysis));
    }

    pub fn get(&self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        self.lock()
            .entries
            .iter()
            .find(|(digest, _)| digest == sbom_sha256)
            .map(|(_, analysis)| analysis.clone())
    }

    /// Removes and returns the analysis: for the last step that needs it.
    pub fn take(&self, sbom_sha256: &str) -> Option<Arc<Analysis>> {
        self.lock().remove(sbom_sha256)
    }

    /// The components the cached analyses hold.
    pub fn weight(&self) -> usize {
        self.lock().weight
    }
}

/// The advisory index of one generation of the advisory store.
#[derive(Debug)]
pub struct CachedIndex {
    pub generation: i64,
    pub index: AdvisoryIndex,
    /// Advisory id → the digests of the current records with that id (one per source).
    digests: HashMap<String, Vec<String>>,
}

impl CachedIndex {
    /// The digests of every advisory naming one of `components`' packages, matched or
    /// not: together they decide the findings, so they are the scan's advisory inputs.
    pub fn candidate_digests(&self, components: &[ScanComponent]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for component in components {
            for (advisory, _) in self.index.candidates(&component.package) {
                for digest in self.digests.get(&advisory.id).into_iter().flatten() {
                    out.insert(format!("sha256:{digest}"));
                }
            }
        }
        out
    }
}

/// The per-process advisory index, rebuilt when the store's generation moves.
#[derive(Debug, Default)]
pub struct AdvisoryCache {
    current: Mutex<Option<Arc<CachedIndex>>>,
}

impl AdvisoryCache {
    /// The index of the store's current advisories. Concurrent callers share one rebuild.
    pub async fn current(&self, store: &Store) -> Result<Arc<CachedIndex>, StoreError> {
        let mut slot = self.current.lock().await;
        // Read before the data: the cached index is never older than its generation.
        let generation = stella_store::repo::generation(store, "advisories").await?;
        if let Some(cached) = slot.as_ref().filter(|c| c.generation == generation) {
            return Ok(cached.clone());
        }
        let stored = store.advisories().all().await?;
        let built = tokio::task::spawn_blocking(move || {
            let mut digests: HashMap<String, Vec<String>> = HashMap::new();
            let mut advisories = Vec::with_capacity(stored.len());
            for record in stored {
                let advisory: Advisory = serde_json::from_value(record.normalized)
                    .map_err(|err| StoreError::Corrupt(format!("advisory {}: {err}", record.id)))?;
                digests.entry(record.id).or_default().push(record.sha256);
                advisories.push(advisory);
            }
            Ok::<_, StoreError>(CachedIndex {
                generation,
                index: AdvisoryIndex::build(advisories),
                digests,
            })
        })
        .await
        .map_err(|err| StoreError::Corrupt(format!("building the advisory index: {err}")))??;
        let built = Arc::new(built);
        *slot = Some(built.clone());
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stella_domain::{Ecosystem, PackageKey};

    use super::*;
    use stella_domain::sbom::SbomSummary;
    use stella_domain::scan::SbomContext;

    fn analysis(components: usize) -> Arc<Analysis> {
        let component = ScanComponent {
            purl: "pkg:npm/left-pad@1.3.0".into(),
            package_purl: "pkg:npm/left-pad".into(),
            package: PackageKey::new(Ecosystem::Npm, "left-pad"),
            version: Some("1.3.0".into()),
            bom_refs: vec!["left-pad".into()],
            release: None,
        };
        Arc::new(Analysis {
            format: "cyclonedx".into(),
            spec_version: "1.5".into(),
            summary: SbomSummary::default(),
            context: SbomContext::default(),
            components: vec![component; components],
        })
    }

    #[test]
    fn the_analysis_cache_is_bounded_by_the_components_it_holds() {
        let cache = AnalysisCache::with_budget(100);
        cache.insert("a", analysis(60));
        cache.insert("b", analysis(30));
        assert!(cache.get("a").is_some() && cache.get("b").is_some());
        assert_eq!(cache.weight(), 90);
        // Over the budget: the oldest goes.
        cache.insert("c", analysis(20));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.weight(), 50);
        // Heavier than the whole budget: not kept, and nothing else is evicted for it.
        cache.insert("huge", analysis(101));
        assert!(cache.get("huge").is_none());
        assert_eq!(cache.weight(), 50);
        // The same digest again replaces its entry.
        cache.insert("b", analysis(30));
        assert_eq!(cache.weight(), 50);
        // The last step takes it out.
        assert_eq!(cache.take("b").unwrap().components.len(), 30);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.weight(), 20);

        // Sixteen analyses of the largest SBOM were all held before (1.6 GB).
        let cache = AnalysisCache::default();
        let large = analysis(200_000);
        for i in 0..16 {
            cache.insert(&i.to_string(), large.clone());
        }
        assert_eq!(cache.weight(), 200_000);
        assert!(cache.get("15").is_some() && cache.get("14").is_none());
    }
}
