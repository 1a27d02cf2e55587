// BullMQ peer for ops/bench/peers.sh: N no-op jobs over Q queues (one per tenant) on
// the given Valkey, added in bulk, one Worker per queue in this process; timed from the
// first add to the last job completed (the worker's `completed` event fires after the
// job's move to finished is acknowledged by Valkey). Prints one JSON object.
//
// Settings, as BullMQ's guide recommends for throughput: `addBulk`, workers with a
// concurrency above 1 for I/O-bound processors, and `removeOnComplete` so finished jobs
// do not accumulate in Valkey.
import { Queue, Worker } from "bullmq";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const url = new URL(arg("--url", "redis://127.0.0.1:6380"));
const jobs = Number(arg("--jobs", "20000"));
const queues = Number(arg("--queues", "10"));
const concurrency = Number(arg("--concurrency", "50"));
const connection = { host: url.hostname, port: Number(url.port || 6379) };
const run = `peer-bullmq-${process.pid}-${Date.now()}`;

const names = Array.from({ length: queues }, (_, i) => `${run}-${i}`);
const producers = names.map((name) => new Queue(name, { connection }));
let done = 0;
let finish;
const finished = new Promise((resolve) => (finish = resolve));
const workers = names.map(
  (name) =>
    new Worker(name, async () => {}, {
      connection,
      concurrency,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 1000 },
    }),
);
for (const worker of workers) {
  worker.on("completed", () => {
    done += 1;
    if (done === jobs) finish();
  });
  worker.on("failed", (job, err) => {
    console.error(`bullmq: job ${job?.id} failed: ${err}`);
    process.exit(1);
  });
}
await Promise.all(workers.map((w) => w.waitUntilReady()));
await Promise.all(producers.map((q) => q.waitUntilReady()));

const started = process.hrtime.bigint();
const chunk = 1000;
for (let first = 0; first < jobs; first += chunk) {
  const perQueue = names.map(() => []);
  for (let n = first; n < Math.min(jobs, first + chunk); n++) {
    perQueue[n % queues].push({ name: "noop", data: { n } });
  }
  await Promise.all(perQueue.map((batch, q) => (batch.length ? producers[q].addBulk(batch) : null)));
}
const pushSeconds = Number(process.hrtime.bigint() - started) / 1e9;
await finished;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;

await Promise.all(workers.map((w) => w.close()));
for (const q of producers) {
  await q.obliterate({ force: true });
  await q.close();
}
console.log(
  JSON.stringify({
    system: "bullmq",
    version: (await import("bullmq/package.json", { with: { type: "json" } }).catch(() => ({ default: {} }))).default.version,
    jobs,
    queues,
    concurrency_per_queue: concurrency,
    push_seconds: Math.round(pushSeconds * 1000) / 1000,
    seconds: Math.round(seconds * 1000) / 1000,
    jobs_per_sec: Math.round(jobs / seconds),
  }),
);
