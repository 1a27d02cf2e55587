-- The policy lifecycle. A version is immutable and moves draft → submitted → approved →
-- active → archived (request-changes sends a submitted version back to draft). Exactly
-- one version of a tenant is active (the partial unique index), and scans read that one,
-- not the newest. `submitted_by` and `approved_by` are identities (token names): the one
-- that submitted a version cannot approve it. Every transition is a row of
-- `policy_transitions`, with who and why, in the transaction that makes it.
--
-- Before this migration the newest version was the active one: it stays active, the
-- older ones are archived, and all of them count as approved by whoever wrote them (they
-- were enforced already), so a rollback may return to one.

ALTER TABLE policies ADD COLUMN status TEXT NOT NULL DEFAULT 'draft';
ALTER TABLE policies ADD COLUMN submitted_by TEXT;
ALTER TABLE policies ADD COLUMN approved_by TEXT;
ALTER TABLE policies ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

UPDATE policies SET status = 'archived', approved_by = created_by, updated_at = created_at;
UPDATE policies SET status = 'active'
 WHERE version = (SELECT MAX(p.version) FROM policies p WHERE p.tenant_id = policies.tenant_id);

CREATE UNIQUE INDEX policies_one_active ON policies (tenant_id) WHERE status = 'active';

CREATE TABLE policy_transitions (
    tenant_id  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    from_status TEXT,
    to_status  TEXT NOT NULL,
    identity   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX policy_transitions_by_version ON policy_transitions (tenant_id, version, seq);

-- `policy:write` became `policy:author` (with review, approve and operate beside it).
UPDATE api_tokens SET scopes = REPLACE(scopes, '"policy:write"', '"policy:author"');
