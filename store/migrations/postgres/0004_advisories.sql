-- Advisories, global to every tenant. Each distinct raw record is an immutable
-- observation: its own digest, and where its bytes are (the imported collection, stored
-- whole in the object store under sha256/<hex>, and the entry in it); `advisories` holds
-- the current normalized form per (source, id), and `advisory_packages` the packages it
-- names, for matching and for the impact of a change.

CREATE TABLE advisory_observations (
    source      TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    collection_sha256 TEXT NOT NULL,
    entry       TEXT NOT NULL,
    modified_at BIGINT NOT NULL,
    fetched_at  BIGINT NOT NULL,
    PRIMARY KEY (source, advisory_id, sha256)
);

CREATE TABLE advisories (
    source      TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    modified_at BIGINT NOT NULL,
    withdrawn   BIGINT,
    normalized  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (source, advisory_id)
);

CREATE TABLE advisory_packages (
    ecosystem   TEXT NOT NULL,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    advisory_id TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name, source, advisory_id)
);

CREATE INDEX advisory_packages_by_advisory ON advisory_packages (source, advisory_id);
