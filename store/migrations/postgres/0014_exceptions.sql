-- Exceptions (waivers) a tenant requests and another identity approves. The scope is a
-- vulnerability id with, optionally, a package (purl without version) and a target
-- name; the type says why (false positive, not affected, mitigated, accepted risk, …);
-- the justification is at least a sentence, and the expiry is required. Statuses:
-- requested → active (approved) or rejected; active → expired (the scheduler, at the
-- expiry) or revoked. Each change that alters verdicts (activation, revocation, expiry)
-- appends an event in its transaction, which the scheduler turns into a re-evaluation
-- of the targets the exception touches.

CREATE TABLE policy_exceptions (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    id              TEXT NOT NULL,
    vulnerability   TEXT NOT NULL,
    package         TEXT,
    target          TEXT,
    kind            TEXT NOT NULL,
    justification   TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    status          TEXT NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    BIGINT NOT NULL,
    decided_by      TEXT,
    decided_at      BIGINT,
    decision_reason TEXT,
    ended_at        BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX policy_exceptions_by_status ON policy_exceptions (status, expires_at);
