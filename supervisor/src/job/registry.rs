//! The job kinds and message kinds one process runs, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::kind::{ErasedKind, InvalidParams, Kind, MessageHandler, Step, Submitters, Typed};
use serde_json::Value;

/// Every job kind and message kind this process knows. It holds no feature state: a
/// kind's own value holds what its steps need.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ErasedKind>>,
    messages: BTreeMap<String, Arc<dyn MessageHandler>>,
}

/// A registered kind as the API and the submitters see it: its name, who may submit it,
/// and its parameter check.
#[derive(Debug, Clone)]
pub struct KindInfo {
    pub name: &'static str,
    pub submitters: Submitters,
    kind: Arc<dyn ErasedKind>,
}

impl KindInfo {
    /// Checks parameters as the kind will read them (decoding included).
    pub fn check_params(&self, params: &Value) -> Result<(), InvalidParams> {
        self.kind.check(params)
    }
}

impl Registry {
    /// Registers a job kind. A kind without steps is a bug in the kind, refused here
    /// rather than when its first job runs.
    pub fn register<K: Kind>(&mut self, kind: K) -> &mut Self {
        assert!(
            !K::Step::ALL.is_empty(),
            "job kind {:?} declares no steps",
            K::NAME
        );
        self.kinds.insert(K::NAME, Arc::new(Typed(kind)));
        self
    }

    pub fn register_message(&mut self, kind: impl Into<String>, handler: Arc<dyn MessageHandler>) {
        self.messages.insert(kind.into(), handler);
    }

    pub(crate) fn message(&self, kind: &str) -> Option<Arc<dyn MessageHandler>> {
        self.messages.get(kind).cloned()
    }

    pub(crate) fn erased(&self, name: &str) -> Option<&Arc<dyn ErasedKind>> {
        self.kinds.get(name)
    }

    /// The names of the job kinds, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// The kind called `name`, if this process runs it.
    pub fn kind(&self, name: &str) -> Option<KindInfo> {
        let (name, kind) = self.kinds.get_key_value(name)?;
        Some(KindInfo {
            name,
            submitters: kind.submitters(),
            kind: kind.clone(),
        })
    }

    /// Checks typed parameters of kind `K` as a submission would; `None` when this
    /// process does not run `K`.
    pub fn check<K: Kind>(&self, params: &K::Params) -> Option<Result<(), InvalidParams>> {
        let kind = self.kinds.get(K::NAME)?;
        Some(match serde_json::to_value(params) {
            Ok(value) => kind.check(&value),
            Err(err) => Err(InvalidParams::new(
                "",
                format!("{} parameters: {err}", K::NAME),
            )),
        })
    }
}
