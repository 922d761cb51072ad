-- Events to a broker (issue 17, docs/integrations.md): each publisher (a NATS JetStream
-- stream, by name) reads the outbox in ledger order from a cursor of its own. Every
-- `ivr serve` process runs one; the one holding the row (FOR UPDATE SKIP LOCKED) publishes
-- and the others wait, so an event is published once however many processes run (and the
-- broker drops a repeat by its message id, the event's id, should one slip through).
-- The cursor moves only after the broker acknowledged the event.
CREATE TABLE event_publishers (
  name        text PRIMARY KEY,
  after_seq   bigint NOT NULL DEFAULT 0,   -- the last event acknowledged by the broker
  advanced_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON event_publishers TO ivr_app;
