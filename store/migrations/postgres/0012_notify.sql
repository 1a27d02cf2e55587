-- Notifications. Channels and rules are a tenant's (a channel's secrets sealed with the
-- notifier's key, never returned); templates override the shipped ones per tenant.
-- A delivery is one (event, rule, channel), unique by its dedupe key: an instant one is
-- carried by its own `notify` job (same id), a digested one by the digest job that
-- claimed it. Receipts are the wire attempts, written as they happen. Digest items wait
-- in their group until a digest job claims them; a group's generation moves on with each
-- claim, so each generation has one digest job. Throttle counters count the deliveries a
-- channel sent per window.

CREATE TABLE notify_channels (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    channel_type  TEXT NOT NULL,
    spec          TEXT NOT NULL,
    secret_sealed TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE notify_rules (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    enabled    BIGINT NOT NULL,
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE notify_templates (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE notify_deliveries (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    dedupe_key   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_kind   TEXT NOT NULL,
    event_seq    BIGINT NOT NULL,
    rule_id      TEXT,
    channel_id   TEXT NOT NULL,
    channel_type TEXT NOT NULL,
    mode         TEXT NOT NULL,
    job_id       TEXT,
    status       TEXT NOT NULL,
    detail       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX notify_deliveries_by_time ON notify_deliveries (tenant_id, created_at, id);

CREATE TABLE notify_attempts (
    tenant_id     TEXT NOT NULL,
    delivery_id   TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    outcome       TEXT NOT NULL,
    status_code   BIGINT,
    latency_ms    BIGINT,
    error         TEXT,
    response_head TEXT,
    PRIMARY KEY (tenant_id, delivery_id, attempt)
);

CREATE TABLE notify_digest_groups (
    tenant_id  TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    rule_id    TEXT,
    template   TEXT,
    generation BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_key)
);

CREATE TABLE notify_digest_items (
    tenant_id   TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    event       TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    digest_job  TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_key, delivery_id)
);
CREATE INDEX notify_digest_items_open ON notify_digest_items (digest_job, due_at);

CREATE TABLE notify_throttle (
    tenant_id    TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    sent         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, window_start)
);

-- The notifier reads the events stream from here on: events older than the notifier
-- are not announced.
INSERT INTO cursors (name, position) SELECT 'notify.events', COALESCE(MAX(seq), 0) FROM events;
