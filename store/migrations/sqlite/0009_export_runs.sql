-- Export runs beyond the job row: the plan a run's first step fixed (stored as an
-- object, named here by its digest, with the number of items it counts), written with
-- that step's outcome (a staged effect, once per run), and how many items its writers
-- have done so far (progress; only ever moves forward), and the counts of what they
-- wrote (set by the write step, the same on every attempt: a function of the plan).

CREATE TABLE export_runs (
    tenant_id    TEXT NOT NULL,
    export_id    TEXT NOT NULL,
    plan_sha256  TEXT NOT NULL,
    items_total  BIGINT NOT NULL,
    items_done   BIGINT NOT NULL DEFAULT 0,
    counts       TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, export_id),
    FOREIGN KEY (tenant_id, export_id) REFERENCES jobs (tenant_id, id)
);
