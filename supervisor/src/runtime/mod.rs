//! The per-process runtime: consumer loops per role, the janitor (delayed entries,
//! take-over of abandoned entries, heartbeats, lease, queue metrics), the outbox relay,
//! and the supervision tree they feed.
//!
//! Layout: this file starts and stops a [`Runtime`]; `loops` holds the consumer, janitor
//! and heartbeat loops; `relay` the outbox relay. What the runtime's parts and the tree
//! share (`crate::shared`) and the metrics (`crate::metrics`) sit beside both folders,
//! so neither imports the other back.

mod loops;
mod relay;

pub use relay::relay_once;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use stella_config::RuntimeSettings;
use stella_store::mailbox::{ConsumerName, Mailbox, Role};
use stella_store::{Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::job::{retry_policy, Registry, StepRunner};
use crate::metrics::RuntimeMetrics;
use crate::shared::Shared;
use crate::snapshot::{ActorSnapshot, Observe};
use crate::tree::RootSupervisor;

/// What a runtime needs to start.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub store: Store,
    pub mailbox: Arc<dyn Mailbox>,
    pub settings: RuntimeSettings,
    pub roles: Vec<Role>,
    pub registry: Registry,
    pub metrics: RuntimeMetrics,
    /// The consumer name; unique per live process (registration refuses a duplicate).
    pub consumer: ConsumerName,
}

/// A running runtime. Must be started inside an actix system.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<Shared>,
    root: Addr<RootSupervisor>,
    stop: watch::Sender<bool>,
    lost: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
    instance: String,
}

impl Runtime {
    /// Registers the consumer name and starts every loop.
    pub async fn start(config: RuntimeConfig) -> Result<Self, StoreError> {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        config.mailbox.register(&config.consumer, &instance).await?;
        // Job actors acknowledge one by one; batching shares the round trips.
        let mailbox: Arc<dyn Mailbox> = Arc::new(stella_store::mailbox::BatchedAcks::new(
            config.mailbox.clone(),
        ));
        let config = RuntimeConfig { mailbox, ..config };
        let runner = StepRunner {
            store: config.store.clone(),
            mailbox: config.mailbox.clone(),
            registry: config.registry.clone(),
            retry: retry_policy(&config.settings),
        };
        let shared = Arc::new(Shared::new(
            runner,
            config.settings.clone(),
            config.metrics.clone(),
            config.consumer.clone(),
        ));
        let root = RootSupervisor::new(shared.clone()).start();
        let (stop, stop_rx) = watch::channel(false);
        let (lost, lost_rx) = watch::channel(None);
        let poll = Duration::from_millis(config.settings.poll_interval_ms);
        let mut tasks = Vec::new();
        let wake: Vec<Arc<tokio::sync::Notify>> =
            config.roles.iter().map(|_| Arc::default()).collect();
        tasks.push(actix_rt::spawn(relay::run(
            config.store.clone(),
            config.mailbox.clone(),
            config.metrics.clone(),
            poll,
            wake.clone(),
            stop_rx.clone(),
        )));
        for (role, wake) in config.roles.iter().zip(wake) {
            tasks.push(actix_rt::spawn(loops::consume(
                shared.clone(),
                role.clone(),
                root.clone(),
                wake,
                stop_rx.clone(),
            )));
            tasks.push(actix_rt::spawn(loops::janitor(
                shared.clone(),
                role.clone(),
                root.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(actix_rt::spawn(loops::heartbeat(
            shared.clone(),
            instance.clone(),
            stop.clone(),
            lost,
            stop_rx,
        )));
        tracing::info!(consumer = %config.consumer, roles = ?config.roles, "runtime started");
        Ok(Self {
            shared,
            root,
            stop,
            lost: lost_rx,
            tasks,
            instance,
        })
    }

    /// Resolves, with the reason, once the runtime has stopped acting on its own: its
    /// consumer lease is gone (another process took the name, or its heartbeat failed
    /// for longer than the lease). Its process should exit so that a fresh one starts;
    /// never resolves while the runtime is healthy.
    pub fn lost(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            loop {
                if let Some(reason) = lost.borrow_and_update().clone() {
                    return reason;
                }
                if lost.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// The supervision tree as observe snapshots.
    pub async fn observe(&self) -> ActorSnapshot {
        self.observer().snapshot().await
    }

    /// A handle that reads the supervision tree from anywhere (the HTTP server's
    /// workers run on other threads).
    pub fn observer(&self) -> Observer {
        Observer {
            root: self.root.clone(),
        }
    }

    /// Stops taking work, lets in-flight deliveries finish until `deadline`, and leaves
    /// the rest unacknowledged for another process to take over.
    pub async fn shutdown(self, deadline: Duration) {
        let _ = self.stop.send(true);
        let total = self.shared.settings.concurrency;
        let drained = tokio::time::timeout(deadline, async {
            // All permits back means nothing is held any more.
            let _all = self.shared.capacity.acquire_many(total).await;
        })
        .await
        .is_ok();
        if !drained {
            let held: usize = self.shared.held_by_role().values().map(Vec::len).sum();
            tracing::warn!(
                held,
                "shutdown deadline passed; leaving unfinished deliveries to other processes"
            );
        }
        for task in &self.tasks {
            task.abort();
        }
        // Bounded: a process cut off from Valkey must still exit; the lease then lapses.
        let released = tokio::time::timeout(
            Duration::from_secs(2),
            self.shared
                .mailbox
                .unregister(&self.shared.consumer, &self.instance),
        )
        .await;
        match released {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "could not release the consumer name"),
            Err(_) => tracing::warn!("releasing the consumer name got no answer in 2 s"),
        }
    }
}

/// Reads the supervision tree of a running [`Runtime`].
#[derive(Debug, Clone)]
pub struct Observer {
    root: Addr<RootSupervisor>,
}

impl Observer {
    /// The tree as observe snapshots; an empty snapshot once the runtime has stopped.
    pub async fn snapshot(&self) -> ActorSnapshot {
        self.root.send(Observe).await.unwrap_or_default()
    }
}
