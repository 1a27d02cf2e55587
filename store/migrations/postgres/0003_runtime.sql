-- Durable runtime: the attempt a relayed message carries, and the built-in `noop` job
-- kind's effect (one idempotent row per job) and execution count (handler runs,
-- redeliveries included).

ALTER TABLE outbox ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;

CREATE TABLE noop_effects (
    tenant_id  TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    written_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, job_id)
);

CREATE TABLE noop_executions (
    tenant_id TEXT NOT NULL,
    job_id    TEXT NOT NULL,
    runs      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, job_id)
);
