-- Exports. A profile is immutable per revision: changing one appends the next revision,
-- and a run names the revision it used. Its definition (selectors, options,
-- distribution, retention) is canonical JSON with its digest, so an unchanged profile
-- makes no new revision. An export run is an `export` job (same id); the files it wrote
-- are recorded with the step that wrote them (staged effects, one row per file and name),
-- so a run has one row per file however often its steps are redelivered.

CREATE TABLE export_profiles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    definition TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name, revision)
);

CREATE TABLE export_files (
    tenant_id  TEXT NOT NULL,
    export_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, export_id, name),
    FOREIGN KEY (tenant_id, export_id) REFERENCES jobs (tenant_id, id)
);
