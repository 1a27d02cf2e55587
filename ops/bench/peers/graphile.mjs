// graphile-worker peer for ops/bench/peers.sh: N no-op jobs on the given PostgreSQL,
// added in bulk (`addJobs`), run by one worker pool in this process; timed from the first
// add to the last job completed (graphile-worker deletes a job's row when it completes,
// so the run ends when its schema's job table is empty). Prints one JSON object.
//
// Settings from graphile-worker's performance guide (worker.graphile.org/docs/performance):
// concurrentJobs 24, maxPoolSize 25, localQueue size 500, completeJobBatchDelay 0,
// failJobBatchDelay 0. No `queueName`: graphile-worker runs a named queue's jobs one at a
// time, so the tenant goes in the payload instead.
import { run, makeWorkerUtils, Logger } from "graphile-worker";
import pg from "pg";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const connectionString = arg("--database-url", "postgres://postgres@127.0.0.1:5432/stella");
const jobs = Number(arg("--jobs", "20000"));
const tenants = Number(arg("--tenants", "10"));
const concurrency = Number(arg("--concurrency", "24"));
const schema = "peer_graphile_worker";

const utils = await makeWorkerUtils({ connectionString, schema, logger: new Logger(() => () => {}) });
await utils.migrate();
const pool = new pg.Pool({ connectionString, max: 1 });
await pool.query(`DELETE FROM ${schema}._private_jobs`);

let handled = 0;
const runner = await run({
  preset: {
    worker: {
      connectionString,
      schema,
      concurrentJobs: concurrency,
      maxPoolSize: concurrency + 1,
      localQueue: { size: 500 },
      completeJobBatchDelay: 0,
      failJobBatchDelay: 0,
    },
  },
  noHandleSignals: true,
  logger: new Logger(() => () => {}),
  taskList: {
    noop: async () => {
      handled += 1;
    },
  },
});

const started = process.hrtime.bigint();
const chunk = 1000;
for (let first = 0; first < jobs; first += chunk) {
  const specs = [];
  for (let n = first; n < Math.min(jobs, first + chunk); n++) {
    specs.push({ identifier: "noop", payload: { tenant: n % tenants, n } });
  }
  await utils.addJobs(specs);
}
const pushSeconds = Number(process.hrtime.bigint() - started) / 1e9;
for (;;) {
  if (handled >= jobs) {
    const { rows } = await pool.query(`SELECT count(*)::int AS left FROM ${schema}._private_jobs`);
    if (rows[0].left === 0) break;
  }
  await new Promise((resolve) => setTimeout(resolve, 2));
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await runner.stop();
await utils.release();
await pool.end();
console.log(
  JSON.stringify({
    system: "graphile-worker",
    jobs,
    tenants,
    concurrency,
    push_seconds: Math.round(pushSeconds * 1000) / 1000,
    seconds: Math.round(seconds * 1000) / 1000,
    jobs_per_sec: Math.round(jobs / seconds),
  }),
);
