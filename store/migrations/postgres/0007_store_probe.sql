-- One row the readiness check writes (an upsert), so a store that can be read but not
-- written (read-only files, a full disk, a standby) is reported not ready.

CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY,
    probed_at BIGINT NOT NULL
);
