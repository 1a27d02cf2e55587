//! Bench-only peer for `stella bench jobs`: N no-op jobs through apalis with its Redis
//! backend, on the same Valkey, timed from the first push to the last job acknowledged
//! (counted in the backend's `done` set). Prints one JSON object.
//!
//! Usage: `peer-apalis [--url redis://127.0.0.1:6380] [--jobs 20000] [--batch 64]
//! [--concurrency 64] [--queues 1]` (one queue and worker per
//! tenant, the concurrency shared out). Not part of the stella workspace: `cargo run --release` here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    n: u64,
}

async fn noop(_job: Noop, counter: Data<Arc<AtomicU64>>) -> Result<(), BoxDynError> {
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = arg("--url", "redis://127.0.0.1:6380");
    let jobs: u64 = arg("--jobs", "20000").parse()?;
    let batch: usize = arg("--batch", "64").parse()?;
    let concurrency: usize = arg("--concurrency", "64").parse()?;
    let queues: u64 = arg("--queues", "1").parse::<u64>()?.max(1);
    let run = format!("peer-apalis-{}", std::process::id());

    let conn = apalis_redis::connect(url.as_str()).await?;
    let mut probe = conn.clone();
    let counter = Arc::new(AtomicU64::new(0));
    // One queue (storage) and one worker per tenant; the concurrency is shared out.
    let per_queue = (concurrency / queues as usize).max(1);
    let mut storages = Vec::new();
    let mut done_keys = Vec::new();
    let mut stops = Vec::new();
    let mut running = Vec::new();
    for q in 0..queues {
        let queue = format!("{run}-{q}");
        let config = Config::default().queue(&queue).batch_size(batch);
        done_keys.push(config.done_jobs_set());
        let storage = RedisStorage::<Noop>::new(conn.clone()).with_config(config);
        let worker = WorkerBuilder::new(format!("peer-apalis-{q}"))
            .backend(storage.clone())
            .data(counter.clone())
            .concurrency(per_queue)
            .build(noop);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        running.push(tokio::spawn(async move {
            worker
                .run_until(async move {
                    let _ = stopped.await;
                    Ok::<(), std::io::Error>(())
                })
                .await
        }));
        storages.push(storage);
    }

    let started = Instant::now();
    let mut pushed = 0u64;
    while pushed < jobs {
        let n = (jobs - pushed).min(512);
        let mut per: Vec<Vec<Noop>> = vec![Vec::new(); queues as usize];
        for n in pushed..pushed + n {
            per[(n % queues) as usize].push(Noop { n });
        }
        for (storage, chunk) in storages.iter_mut().zip(per) {
            if !chunk.is_empty() {
                storage.push_bulk(chunk).await?;
            }
        }
        pushed += n;
    }
    let push_seconds = started.elapsed().as_secs_f64();
    while counter.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let handled_seconds = started.elapsed().as_secs_f64();
    // Done is acknowledged: the backend records finished tasks in each queue's `done` set.
    loop {
        let mut done = 0u64;
        for key in &done_keys {
            let n: u64 = redis::cmd("SCARD").arg(key).query_async(&mut probe).await?;
            done += n;
        }
        if done >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    for stop in stops {
        let _ = stop.send(());
    }
    for r in running {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }

    // Leave nothing behind on the shared Valkey.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{run}*"))
        .query_async(&mut probe)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut probe).await?;
    }
    for q in 0..queues {
        let _: i64 = redis::cmd("ZREM")
            .arg("core:apalis:queues:list")
            .arg(format!("{run}-{q}:workers"))
            .query_async(&mut probe)
            .await?;
    }

    println!(
        "{}",
        serde_json::json!({
            "system": "apalis-redis",
            "version": "1.0.0",
            "jobs": jobs,
            "queues": queues,
            "batch_size": batch,
            "concurrency_per_queue": per_queue,
            "push_seconds": (push_seconds * 1000.0).round() / 1000.0,
            "handled_seconds": (handled_seconds * 1000.0).round() / 1000.0,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "jobs_per_sec": (jobs as f64 / seconds).round(),
        })
    );
    Ok(())
}
