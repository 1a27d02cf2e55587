-- Foundation schema. Times are Unix epoch milliseconds (UTC) in BIGINT columns and JSON is
-- TEXT, so the same statements run on PostgreSQL and SQLite (docs/ARCHITECTURE.md).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);

CREATE TABLE jobs (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    step            TEXT NOT NULL,
    params          TEXT NOT NULL,
    result          TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    last_error      TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    not_before      BIGINT NOT NULL,
    finished_at     BIGINT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX jobs_tenant_state ON jobs (tenant_id, state, created_at);

CREATE TABLE job_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    step       TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    error      TEXT,
    at         BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id)
);
CREATE INDEX job_events_job ON job_events (tenant_id, job_id, seq);

CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    job_id          TEXT,
    role            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    not_before      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    relayed_at      BIGINT
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE relayed_at IS NULL;

CREATE TABLE idempotency_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    request_id TEXT,
    details    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
