-- Labels on tenants (a JSON object of key → value), which rollout waves can select by
-- (`{"labels": {"env": "prod"}}`).
ALTER TABLE tenants ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
