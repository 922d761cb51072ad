-- The tamper-evident ledger, and a service role that can only add to the evidence.
--
-- Every evidence row is chained: ledger entry n stores
--   hash_n = hex(SHA-256(UTF-8(canonical_json(row_n) || hash_{n-1})))
-- with hash_0's predecessor sixty-four zeros. canonical_json is computed by the
-- service (storage/ledger.py: the row as Postgres renders it in JSON with the session
-- in UTC, keys sorted, no insignificant whitespace); this function only hashes and links,
-- under a transaction-scoped lock, so entries get one gap-free order.

-- The role the service works as (SET ROLE on every pooled connection): it may read
-- and add evidence, never change or remove it.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ivr_app') THEN
    CREATE ROLE ivr_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- another database on this cluster created it at the same moment
END;
$$;
GRANT ivr_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO ivr_app;

CREATE TABLE ledger (
  seq          bigint PRIMARY KEY CHECK (seq >= 1),
  kind         text NOT NULL,        -- the evidence table the row is in
  ref_id       bigint NOT NULL,      -- the row's id there
  prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash         text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
  appended_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, ref_id)
);

-- Appends one entry per (kind, ref_id, canonical content), in the order given, after
-- the current head. Called once per transaction, as its last statement, so the lock is
-- held only for this call and the commit that follows.
CREATE FUNCTION ledger_append(kinds text[], ref_ids bigint[], contents text[])
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  head_seq  bigint;
  head_hash text;
  i         integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7392411508);  -- the ledger's one writer at a time
  SELECT seq, hash INTO head_seq, head_hash FROM ledger ORDER BY seq DESC LIMIT 1;
  IF head_seq IS NULL THEN
    head_seq := 0;
    head_hash := repeat('0', 64);
  END IF;
  FOR i IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
    INSERT INTO ledger (seq, kind, ref_id, prev_hash, hash)
    VALUES (head_seq + 1, kinds[i], ref_ids[i], head_hash,
            encode(sha256(convert_to(contents[i] || head_hash, 'UTF8')), 'hex'));
    head_seq := head_seq + 1;
    head_hash := encode(sha256(convert_to(contents[i] || head_hash, 'UTF8')), 'hex');
  END LOOP;
  RETURN head_hash;
END;
$$;
REVOKE ALL ON FUNCTION ledger_append(text[], bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_append(text[], bigint[], text[]) TO ivr_app;

-- Every evidence table gets: append-only triggers, SELECT + INSERT for the service
-- role, and an id the ledger can point at.
CREATE FUNCTION make_evidence_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('GRANT SELECT, INSERT ON %s TO ivr_app', t);
  IF NOT EXISTS (SELECT FROM pg_trigger
                 WHERE tgrelid = t AND tgfoid = 'refuse_evidence_change'::regproc) THEN
    EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change()', t);
    EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change()', t);
  END IF;
END;
$$;

-- The tables keyed by something else get an id of their own.
ALTER TABLE calls ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY UNIQUE;
ALTER TABLE call_endings ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY UNIQUE;
ALTER TABLE flow_versions ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY UNIQUE;

SELECT make_evidence_table(t) FROM unnest(ARRAY[
  'flow_versions', 'calls', 'keypresses', 'consent_events', 'call_endings', 'recordings',
  'recording_statuses', 'connections', 'pin_checks', 'notices', 'requests', 'request_events'
]::regclass[]) AS t;

-- The ledger itself: readable by the service, written only through ledger_append.
GRANT SELECT ON ledger TO ivr_app;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ledger
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON ledger
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();

-- The customer directory is not evidence: the service (and `ivr customers import`)
-- maintains it.
GRANT SELECT, INSERT, UPDATE, DELETE ON customers, customer_phones TO ivr_app;
GRANT SELECT ON schema_migrations TO ivr_app;
