-- The scan pipeline. Per tenant: the SBOMs it submitted (raw bytes content-addressed in
-- the object store under sha256/<hex>), its scans (one per scan job, same id) with the
-- analysis, the verdict and the attestation's digest, each finding of a scan (for paged
-- reads), and its policy versions. VEX documents are global (tenant_id '') or a tenant's.
-- `events` is the events stream (scan.completed, advisory.delta; tenant_id '' for global
-- events), deduplicated by key so a redelivered step never emits twice. `generations`
-- counts changes of data that processes cache (the advisory index).

CREATE TABLE sboms (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    sha256       TEXT NOT NULL,
    name         TEXT NOT NULL,
    format       TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE scans (
    tenant_id          TEXT NOT NULL,
    id                 TEXT NOT NULL,
    sbom_sha256        TEXT NOT NULL,
    sbom_name          TEXT NOT NULL,
    evaluated_at       BIGINT NOT NULL,
    analysis           TEXT,
    verdict            TEXT,
    disposition        TEXT,
    counts             TEXT,
    inputs             TEXT,
    inputs_hash        TEXT,
    attestation_sha256 TEXT,
    created_at         BIGINT NOT NULL,
    completed_at       BIGINT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, id) REFERENCES jobs (tenant_id, id)
);

CREATE TABLE scan_findings (
    tenant_id        TEXT NOT NULL,
    scan_id          TEXT NOT NULL,
    ordinal          BIGINT NOT NULL,
    vulnerability_id TEXT NOT NULL,
    purl             TEXT NOT NULL,
    disposition      TEXT NOT NULL,
    finding          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, scan_id, ordinal),
    FOREIGN KEY (tenant_id, scan_id) REFERENCES scans (tenant_id, id)
);

CREATE TABLE vex_documents (
    tenant_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    format      TEXT NOT NULL,
    statements  TEXT NOT NULL,
    statement_count BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE policies (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    version    BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);

CREATE TABLE generations (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO generations (name, value) VALUES ('advisories', 0), ('vex', 0);
