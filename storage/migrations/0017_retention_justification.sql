-- Retention that can be rechecked (issue 15, attack 2).
--
-- Each tombstone now carries its justification: for every call it removed, the call's
-- start, caller and ledger entry, and each decision's purpose, subject, time and the
-- later decision that superseded it, read from the rows themselves just before they
-- went. It is part of the chained row, so `ivr verify` can recheck, against the chain,
-- the holds and the signed checkpoints, that each removal was allowed. Numbers and
-- accounts are kept only as SHA-256 digests salted per run: pseudonymous, not
-- anonymous (whoever holds a number and the run's salt can test whether it is there).
-- Runs made before this migration have none (NULL): they cannot be rechecked.
ALTER TABLE retention_runs ADD COLUMN justification jsonb;
-- Each run's removed rows are read per run (its digest, its justification's listing).
CREATE INDEX removed_rows_run ON removed_rows (run_id);

-- `ivr verify` compares each evidence table's identity sequence with the largest id the
-- ledger holds (a sequence set back would hand out chained ids again), as the service
-- login: every evidence table, now and to come, lets ivr_app read its id's sequence.
-- SELECT on a sequence reads it; it can neither advance nor set it.

-- The sequence behind a table's id (NULL for a table without one: removed_rows, ledger_origin).
CREATE FUNCTION evidence_id_sequence(t regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT pg_get_serial_sequence(t::text, 'id')
  WHERE EXISTS (SELECT FROM pg_attribute WHERE attrelid = t AND attname = 'id' AND NOT attisdropped)
$$;

CREATE OR REPLACE FUNCTION make_evidence_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  seq text := evidence_id_sequence(t);
BEGIN
  EXECUTE format('GRANT SELECT, INSERT ON %s TO ivr_app', t);
  IF seq IS NOT NULL THEN
    EXECUTE format('GRANT SELECT ON SEQUENCE %s TO ivr_app', seq);
  END IF;
  IF NOT EXISTS (SELECT FROM pg_trigger
                 WHERE tgrelid = t AND tgfoid = 'refuse_evidence_change'::regproc) THEN
    EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change()', t);
    EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change()', t);
  END IF;
END;
$$;

DO $$
DECLARE
  seq text;
BEGIN
  FOR seq IN
    SELECT evidence_id_sequence(c.oid) FROM pg_class c
    WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND is_evidence_table(c.relname)
  LOOP
    IF seq IS NOT NULL THEN
      EXECUTE format('GRANT SELECT ON SEQUENCE %s TO ivr_app', seq);
    END IF;
  END LOOP;
END;
$$;
