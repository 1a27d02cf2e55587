-- Container images a tenant uploaded (`POST /api/v1/images`): the archive is the object
-- `sha256/<archive_sha256>`, the SBOM made of it `sha256/<sbom_sha256>` (also in `sboms`).
-- Keyed by the image's manifest digest; uploading the same image again re-points it.
CREATE TABLE images (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    digest          TEXT NOT NULL,
    name            TEXT NOT NULL,
    format          TEXT NOT NULL,
    archive_sha256  TEXT NOT NULL,
    archive_size    BIGINT NOT NULL,
    sbom_sha256     TEXT NOT NULL,
    summary         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, digest)
);
CREATE INDEX images_by_time ON images (tenant_id, created_at DESC);
