-- Retention: evidence past its retention period may be removed, only by the retention
-- run, which first writes a chained record of what it removes (the rows' ledger hashes)
-- so the chain still verifies and shows what went and why. Legal holds stop it.

-- DELETE is allowed only inside a retention run (a transaction that set
-- ivr.retention_run); the service role has no DELETE privilege at all, so only the
-- tables' owner can ever start one. UPDATE and TRUNCATE stay refused.
CREATE OR REPLACE FUNCTION refuse_evidence_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('ivr.retention_run', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'evidence table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Holds placed and released, as events; a subject is on hold while its latest is 'place'.
CREATE TABLE hold_events (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject   text NOT NULL,
  action    text NOT NULL CHECK (action IN ('place', 'release')),
  reason    text NOT NULL CHECK (length(reason) > 0),
  actor     text NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hold_events_subject ON hold_events (subject, id DESC);
SELECT make_evidence_table('hold_events');

-- One row per retention run that removed anything: the tombstone event. Its digest is
-- SHA-256 over the sorted lines "kind:ref_id:ledger_hash" of the rows it removed.
CREATE TABLE retention_runs (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ran_at          timestamptz NOT NULL DEFAULT now(),
  actor           text NOT NULL,
  reason          text NOT NULL,
  periods         jsonb NOT NULL,
  rows_removed    integer NOT NULL,
  removed_digest  text NOT NULL CHECK (removed_digest ~ '^[0-9a-f]{64}$')
);
SELECT make_evidence_table('retention_runs');

-- What each run removed: enough for `ivr verify` to accept the gap and name it.
CREATE TABLE removed_rows (
  kind         text NOT NULL,
  ref_id       bigint NOT NULL,
  run_id       bigint NOT NULL REFERENCES retention_runs (id),
  ledger_seq   bigint NOT NULL,
  ledger_hash  text NOT NULL,
  PRIMARY KEY (kind, ref_id)
);
GRANT SELECT ON removed_rows TO ivr_app;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON removed_rows
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
