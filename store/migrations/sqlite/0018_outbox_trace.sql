-- The sender's W3C traceparent, carried into the envelope (store/src/telemetry.rs).
ALTER TABLE outbox ADD COLUMN trace TEXT;
