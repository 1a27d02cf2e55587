-- The embedded mailbox: the mailbox contract on the relational store, so the embedded
-- default needs no Valkey. An entry is ready when `consumer` is NULL and `visible_at`
-- has passed, pending while a consumer holds it, and gone once acknowledged.

CREATE TABLE mailbox_entries (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    role       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    envelope   TEXT NOT NULL,
    visible_at BIGINT NOT NULL,
    deliveries BIGINT NOT NULL DEFAULT 0,
    consumer   TEXT,
    claimed_at BIGINT
);
CREATE INDEX mailbox_entries_ready ON mailbox_entries (role, visible_at, seq) WHERE consumer IS NULL;
CREATE INDEX mailbox_entries_pending ON mailbox_entries (role, claimed_at) WHERE consumer IS NOT NULL;

CREATE TABLE mailbox_dedupe (
    dedupe_key TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mailbox_dedupe_expiry ON mailbox_dedupe (expires_at);

CREATE TABLE mailbox_dead (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    role       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    envelope   TEXT NOT NULL,
    error      TEXT NOT NULL,
    deliveries BIGINT NOT NULL,
    died_at    BIGINT NOT NULL
);
CREATE INDEX mailbox_dead_role ON mailbox_dead (role, seq);

CREATE TABLE mailbox_consumers (
    name       TEXT PRIMARY KEY,
    instance   TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
