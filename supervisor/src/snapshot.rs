use serde::Serialize;

/// What an actor reports about itself; the supervision tree is a tree of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActorSnapshot {
    pub name: String,
    pub kind: String,
    /// Messages waiting for this actor.
    pub queue_depth: u64,
    pub in_flight: u64,
    pub restarts: u64,
    pub quarantined: bool,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ActorSnapshot>,
}

/// Asks an actor for its [`ActorSnapshot`].
#[derive(Debug, Clone, Copy)]
pub struct Observe;

impl actix::Message for Observe {
    type Result = ActorSnapshot;
}
