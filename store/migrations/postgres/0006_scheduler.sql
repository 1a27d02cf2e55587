-- The scheduler. Per tenant: targets (a named image or application and the SBOM of its
-- latest scan), schedules (cron, timezone, kind, policies, and the next due and fire
-- times), runs (one per firing or trigger) and each run's per-target results.
-- `target_packages` is the impact index: package (purl type/namespace/name, no version,
-- as `ecosystem/name`) → the targets whose SBOM contains it. `leases` holds the
-- scheduler's leader lease and its fencing token; `cursors` how far the leader has read
-- the events stream.

CREATE TABLE targets (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    sbom_sha256  TEXT NOT NULL,
    last_scan_id TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, sbom_sha256) REFERENCES sboms (tenant_id, sha256)
);

CREATE TABLE target_packages (
    tenant_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    package   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, target_id, package),
    FOREIGN KEY (tenant_id, target_id) REFERENCES targets (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX target_packages_by_package ON target_packages (package);

CREATE TABLE schedules (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    cron           TEXT NOT NULL,
    timezone       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    targets        TEXT,
    sources        TEXT,
    jitter_seconds BIGINT NOT NULL,
    missed         TEXT NOT NULL,
    overlap        TEXT NOT NULL,
    state          TEXT NOT NULL,
    next_due_at    BIGINT,
    next_fire_at   BIGINT,
    last_run_id    TEXT,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE INDEX schedules_by_fire_time ON schedules (next_fire_at);

CREATE TABLE runs (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    id          TEXT NOT NULL,
    schedule_id TEXT,
    triggered_by TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    dedupe_key  TEXT NOT NULL UNIQUE,
    targets     TEXT,
    sources     TEXT,
    reason      TEXT NOT NULL,
    counts      TEXT NOT NULL,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX runs_by_state ON runs (state, id);
CREATE INDEX runs_by_schedule ON runs (tenant_id, schedule_id, id);
CREATE INDEX runs_active_by_schedule ON runs (schedule_id, state);

CREATE TABLE run_targets (
    tenant_id        TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    target_id        TEXT NOT NULL,
    target_name      TEXT NOT NULL,
    scan_id          TEXT NOT NULL,
    previous_scan_id TEXT,
    state            TEXT NOT NULL,
    diff             TEXT,
    PRIMARY KEY (tenant_id, run_id, target_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
);
CREATE INDEX run_targets_by_state ON run_targets (state);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO leases (name, holder, token, expires_at) VALUES ('scheduler', '', 0, 0);

-- The leader starts reading events after those already there when the scheduler arrived.
CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO cursors (name, position) SELECT 'scheduler.events', COALESCE(MAX(seq), 0) FROM events;
