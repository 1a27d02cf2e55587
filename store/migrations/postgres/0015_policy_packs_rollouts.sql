-- Policy packs and their rollouts (issue 14).
--
-- A pack is an administrator's policy, global, immutable per version; a tenant has at
-- most one pack assigned (`tenant_packs`), which its scans evaluate as a floor under the
-- tenant's own policy. Packs reach tenants only through rollouts.
--
-- A rollout moves one pack version through waves of tenants, fixed when it is created
-- (`rollout_tenants`, with what each tenant had before, for a rollback). The scheduler's
-- leader drives it (`state`, `wave`, `phase`, `next_at`); each wave's tenants are
-- evaluated in shadow by one `rollout` job each, whose result (`rollout_shadows`, one per
-- rollout, tenant and generation: a resumed wave is shadowed again) commits with the job.
-- `open` is 'open' while a rollout is unfinished: its unique index lets one rollout at a
-- time move packs (NULLs are distinct). `rollout_transitions` records every move with
-- who and why.

CREATE TABLE policy_packs (
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE tenant_packs (
    tenant_id   TEXT PRIMARY KEY,
    pack        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    rollout_id  TEXT,
    assigned_at BIGINT NOT NULL
);

CREATE TABLE rollouts (
    id            TEXT PRIMARY KEY,
    pack          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    spec          TEXT NOT NULL,
    state         TEXT NOT NULL,
    wave          BIGINT NOT NULL,
    phase         TEXT NOT NULL,
    generation    BIGINT NOT NULL,
    approved_wave BIGINT,
    next_at       BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    open          TEXT UNIQUE,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX rollouts_by_state ON rollouts (state, next_at);

CREATE TABLE rollout_tenants (
    rollout_id       TEXT NOT NULL,
    tenant_id        TEXT NOT NULL,
    wave             BIGINT NOT NULL,
    previous_pack    TEXT,
    previous_version BIGINT,
    activated_at     BIGINT,
    rolled_back_at   BIGINT,
    PRIMARY KEY (rollout_id, tenant_id)
);
CREATE INDEX rollout_tenants_by_wave ON rollout_tenants (rollout_id, wave, tenant_id);

CREATE TABLE rollout_shadows (
    rollout_id  TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    job_id      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    diff_sha256 TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, tenant_id, generation)
);

CREATE TABLE rollout_transitions (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id TEXT NOT NULL,
    action     TEXT NOT NULL,
    wave       BIGINT,
    identity   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX rollout_transitions_by_rollout ON rollout_transitions (rollout_id, seq);
