-- Mirror bundles (advisories and VEX for air-gapped installs). Each advisory row and VEX
-- document records the generation that last wrote it (`generation`; for advisories also
-- the one that first wrote it, `first_generation`), set in the transaction that bumps the
-- counter, so a delta export reads what changed since a base export's generation.
-- Rows written before this migration have 0: older than any mirror export.
--
-- `mirror_imports` records every bundle this instance imported (its manifest's digest,
-- the instance that signed it, the generations it brings this instance to, why it was
-- forced when it was), written in the import's own transaction; the latest row of an
-- origin is how far forward this instance is. `mirror_quarantine` keeps the bundles that
-- failed their checks: the object they were set aside as, and why.

ALTER TABLE advisories ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE advisories ADD COLUMN first_generation BIGINT NOT NULL DEFAULT 0;
CREATE INDEX advisories_by_generation ON advisories (generation);

ALTER TABLE vex_documents ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
CREATE INDEX vex_documents_by_generation ON vex_documents (generation);

CREATE TABLE mirror_imports (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    origin                TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    manifest_sha256       TEXT NOT NULL,
    bundle_sha256         TEXT NOT NULL,
    base_manifest_sha256  TEXT,
    advisories_generation BIGINT NOT NULL,
    vex_generation        BIGINT NOT NULL,
    counts                TEXT NOT NULL,
    forced_reason         TEXT,
    imported_by           TEXT NOT NULL,
    imported_at           BIGINT NOT NULL
);
CREATE INDEX mirror_imports_by_origin ON mirror_imports (origin, seq);
CREATE INDEX mirror_imports_by_manifest ON mirror_imports (manifest_sha256);

CREATE TABLE mirror_quarantine (
    bundle_sha256  TEXT PRIMARY KEY,
    object_key     TEXT NOT NULL,
    file           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    quarantined_by TEXT NOT NULL,
    quarantined_at BIGINT NOT NULL
);
