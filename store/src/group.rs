//! Group commit: concurrent single-row writes (and reads) of many callers become one
//! statement or one transaction.
//!
//! A [`Coalescer`] queues requests; one dispatcher task takes whatever is queued (up to
//! a cap) as soon as a flush slot is free and runs the batch. While every slot is busy,
//! requests pile up and go together in the next batch, so under load the batches grow by
//! themselves and at low load a request goes alone without waiting. Each caller still
//! waits for its own result, so "acknowledge after commit" holds exactly as before; only
//! the commits and round trips are shared.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Backend, Result, StoreError};
use crate::repo::{Job, JobChange, JobKey};
use crate::Store;

type Reply<T> = oneshot::Sender<Result<T>>;
type Queue<R, T> = mpsc::UnboundedSender<(R, Reply<T>)>;
type Batch<R, T> = Vec<(R, Reply<T>)>;
type FlushFuture<T> = Pin<Box<dyn Future<Output = Vec<Result<T>>> + Send>>;
type Flush<R, T> = fn(Store, Vec<R>) -> FlushFuture<T>;

/// Requests gathered into one batch at most (SQLite allows 32,766 bound parameters per
/// statement; a job transition binds 13 per row).
pub(crate) const MAX_BATCH: usize = 256;

/// Batches in flight at once per coalescer. SQLite has one writer at a time, so more
/// would only queue on its lock; PostgreSQL overlaps a few.
fn parallel(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 2,
        _ => 1,
    }
}

/// Queues requests of one kind and runs them in batches (see the module docs).
pub(crate) struct Coalescer<R, T> {
    sender: Mutex<Option<Queue<R, T>>>,
    flush: Flush<R, T>,
}

impl<R, T> std::fmt::Debug for Coalescer<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<R: Send + 'static, T: Send + 'static> Coalescer<R, T> {
    pub(crate) fn new(flush: Flush<R, T>) -> Self {
        Self {
            sender: Mutex::new(None),
            flush,
        }
    }

    /// Queues `request` for the next batch now, and returns the wait for its own result.
    /// Not an `async fn`: the future holds only the reply channel, not the request (a
    /// worker holds one per job in flight).
    pub(crate) fn call(
        &self,
        store: &Store,
        request: R,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let backend = store.backend();
        let queued = self.sender(store).and_then(|sender| {
            let (reply, done) = oneshot::channel();
            sender
                .send((request, reply))
                .map(|()| done)
                .map_err(|_| stopped(backend))
        });
        async move { queued?.await.map_err(|_| stopped(backend))? }
    }

    fn sender(&self, store: &Store) -> Result<Queue<R, T>> {
        let mut sender = self.sender.lock().map_err(|_| stopped(store.backend()))?;
        if let Some(open) = sender.as_ref().filter(|s| !s.is_closed()) {
            return Ok(open.clone());
        }
        // Started on first use (and again if the runtime that ran it went away). The task
        // holds a detached store handle, so it ends when the last `Store` clone is gone.
        let (open, requests) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(store.detached(), requests, self.flush));
        *sender = Some(open.clone());
        Ok(open)
    }
}

fn stopped(backend: Backend) -> StoreError {
    StoreError::Unavailable {
        backend,
        reason: "the group commit task stopped".into(),
    }
}

async fn dispatch<R: Send + 'static, T: Send + 'static>(
    store: Store,
    mut requests: mpsc::UnboundedReceiver<(R, Reply<T>)>,
    flush: Flush<R, T>,
) {
    let slots = Arc::new(Semaphore::new(parallel(store.backend())));
    loop {
        // A free slot first, then whatever queued up meanwhile: that is the batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            return;
        };
        let mut batch: Batch<R, T> = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            let (items, replies): (Vec<R>, Vec<Reply<T>>) = batch.into_iter().unzip();
            let count = items.len();
            let mut results = flush(store.clone(), items).await;
            if results.len() != count {
                // A flush answers every request; if one ever does not, fail them all
                // rather than hand a caller another caller's result.
                results = (0..count)
                    .map(|_| {
                        Err(StoreError::Backend {
                            backend: store.backend(),
                            reason: "group commit answered the wrong number of requests".into(),
                        })
                    })
                    .collect();
            }
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            drop(slot);
        });
    }
}

/// The coalescers of one store (shared by its clones).
#[derive(Debug)]
pub(crate) struct Groups {
    pub(crate) get_jobs: Coalescer<JobKey, Job>,
    pub(crate) change_jobs: Coalescer<JobChange, Job>,
}

impl Default for Groups {
    fn default() -> Self {
        Self {
            get_jobs: Coalescer::new(|store, keys| {
                Box::pin(async move { crate::repo::get_jobs(&store, &keys).await })
            }),
            change_jobs: Coalescer::new(|store, changes| {
                Box::pin(async move { store.apply_changes(changes).await })
            }),
        }
    }
}
