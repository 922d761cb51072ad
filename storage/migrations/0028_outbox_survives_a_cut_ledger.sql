-- The outbox must never stop the ledger taking evidence: if the ledger's tail was cut (an
-- insider with the owner's rights; `ivr verify` reports it as truncated or forked), the
-- seqs chained again still have their old events, and writing a new one for the same seq
-- failed, and with it the decision's whole transaction: the caller was told nothing was
-- recorded. Now such an event is kept as it was (the tampering is what verify reports),
-- and the evidence is committed.
CREATE OR REPLACE FUNCTION link_entries(kinds text[], ref_ids bigint[], contents text[])
RETURNS text
LANGUAGE plpgsql
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
    -- UNIQUE (kind, ref_id): a row is chained once, whoever asks again.
    INSERT INTO ledger (seq, kind, ref_id, prev_hash, hash)
    VALUES (head_seq + 1, kinds[i], ref_ids[i], head_hash,
            encode(sha256(convert_to(contents[i] || head_hash, 'UTF8')), 'hex'))
    RETURNING seq, hash INTO head_seq, head_hash;
    -- Its event, if it makes one (a primary-key read of the row just inserted).
    IF kinds[i] = 'consent_events' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, CASE c.action WHEN 'grant' THEN 'consent.granted' ELSE 'consent.revoked' END,
             c.subject, c.recorded_at
      FROM consent_events c WHERE c.id = ref_ids[i]
      ON CONFLICT (seq) DO NOTHING;
    ELSIF kinds[i] = 'requests' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, 'request.opened', 'request:' || r.id, r.opened_at FROM requests r WHERE r.id = ref_ids[i]
      ON CONFLICT (seq) DO NOTHING;
    ELSIF kinds[i] = 'request_events' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, 'request.status_changed', 'request:' || e.request_id, e.at
      FROM request_events e WHERE e.id = ref_ids[i]
      ON CONFLICT (seq) DO NOTHING;
    ELSIF kinds[i] = 'deemed_approvals' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, a.purpose || '.deemed_granted', a.subject, a.deemed_from
      FROM deemed_approvals a WHERE a.id = ref_ids[i]
      ON CONFLICT (seq) DO NOTHING;
    END IF;
  END LOOP;
  RETURN head_hash;
END;
$$;
REVOKE ALL ON FUNCTION link_entries(text[], bigint[], text[]) FROM PUBLIC;
