//! Bench-only peer for `stella bench jobs`: N no-op jobs through apalis with its Redis
//! backend, on the same Valkey, timed from the first push to the last job acknowledged
//! (counted in the backend's `done` set). Prints one JSON object.
//!
//! Usage: `peer-apalis [--url redis://127.0.0.1:6380] [--jobs 20000] [--batch 64]
//! [--concurrency 64]`. Not part of the stella workspace: `cargo run --release` here.

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
    let queue = format!("peer-apalis-{}", std::process::id());

    let conn = apalis_redis::connect(url.as_str()).await?;
    let config = Config::default().queue(&queue).batch_size(batch);
    let done_key = config.done_jobs_set();
    let mut storage = RedisStorage::<Noop>::new(conn.clone()).with_config(config);
    let mut probe = conn.clone();

    let counter = Arc::new(AtomicU64::new(0));
    let worker = WorkerBuilder::new("peer-apalis")
        .backend(storage.clone())
        .data(counter.clone())
        .concurrency(concurrency)
        .build(noop);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run_until(async move {
                let _ = stopped.await;
                Ok::<(), std::io::Error>(())
            })
            .await
    });

    let started = Instant::now();
    let mut pushed = 0u64;
    while pushed < jobs {
        let n = (jobs - pushed).min(512);
        let chunk: Vec<Noop> = (pushed..pushed + n).map(|n| Noop { n }).collect();
        storage.push_bulk(chunk).await?;
        pushed += n;
    }
    let push_seconds = started.elapsed().as_secs_f64();
    while counter.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let handled_seconds = started.elapsed().as_secs_f64();
    // Done is acknowledged: the backend records finished tasks in its `done` set.
    loop {
        let done: u64 = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(&mut probe)
            .await?;
        if done >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;

    // Leave nothing behind on the shared Valkey.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue}*"))
        .query_async(&mut probe)
        .await?;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut probe).await?;
    }
    let _: i64 = redis::cmd("ZREM")
        .arg("core:apalis:queues:list")
        .arg(format!("{queue}:workers"))
        .query_async(&mut probe)
        .await?;

    println!(
        "{}",
        serde_json::json!({
            "peer": "apalis-redis 1.0.0",
            "jobs": jobs,
            "batch_size": batch,
            "concurrency": concurrency,
            "push_seconds": (push_seconds * 1000.0).round() / 1000.0,
            "handled_seconds": (handled_seconds * 1000.0).round() / 1000.0,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "jobs_per_sec": (jobs as f64 / seconds).round(),
        })
    );
    Ok(())
}
