-- The outbox, leaner (issue 17: the commit path may not get more than 10% slower).
--
-- A trigger on the ledger ran once per entry, under the ledger's lock, and rendered each
-- event's data there. Now link_entries itself, which chains the entries (in the evidence's
-- own transaction, as before), writes each entry's event as it chains it, and only what
-- orders and routes it: the entry, type, ordering key and time (no trigger machinery, no
-- rendering). What a receiver needs to act (event_data below) is rendered from the chained
-- rows when the event is read, the same way every time, off the commit path. An entry of
-- another kind pays four text comparisons.
DROP TRIGGER ledger_events ON ledger;
DROP FUNCTION ledger_event();
ALTER TABLE events DROP COLUMN data;

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
      FROM consent_events c WHERE c.id = ref_ids[i];
    ELSIF kinds[i] = 'requests' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, 'request.opened', 'request:' || r.id, r.opened_at FROM requests r WHERE r.id = ref_ids[i];
    ELSIF kinds[i] = 'request_events' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, 'request.status_changed', 'request:' || e.request_id, e.at
      FROM request_events e WHERE e.id = ref_ids[i];
    ELSIF kinds[i] = 'deemed_approvals' THEN
      INSERT INTO events (seq, type, ordering_key, occurred_at)
      SELECT head_seq, a.purpose || '.deemed_granted', a.subject, a.deemed_from
      FROM deemed_approvals a WHERE a.id = ref_ids[i];
    END IF;
  END LOOP;
  RETURN head_hash;
END;
$$;
REVOKE ALL ON FUNCTION link_entries(text[], bigint[], text[]) FROM PUBLIC;

-- An event's data, rendered from its entry and the row it chained (migration 0022's shape).
-- A revocation's reach is read from the customer directory as it is now, as every other
-- reading of consent is (deciding_decision).
CREATE FUNCTION event_data(p_seq bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
  l       ledger;
  c       consent_events;
  r       requests;
  e       request_events;
  a       deemed_approvals;
  chained jsonb;
BEGIN
  SELECT * INTO l FROM ledger WHERE seq = p_seq;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  chained := jsonb_build_object('seq', l.seq, 'hash', l.hash);
  IF l.kind = 'consent_events' THEN
    SELECT * INTO c FROM consent_events WHERE id = l.ref_id;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('removed', true, 'ledger', chained);  -- by a retention run
    END IF;
    RETURN jsonb_build_object(
      'subject', c.subject,
      'subject_kind', CASE c.subject_kind WHEN 'customer' THEN 'account' ELSE 'phone' END,
      'reaches', CASE WHEN c.action = 'grant' THEN jsonb_build_array(c.subject) ELSE to_jsonb(ARRAY(
        SELECT DISTINCT s FROM (
          SELECT c.subject AS s
          UNION ALL SELECT c.caller_number WHERE c.identification <> 'keyed_number'
          UNION ALL SELECT account_number FROM customer_phones WHERE phone = c.subject
          UNION ALL SELECT phone FROM customer_phones WHERE account_number = c.subject
        ) reach ORDER BY s)) END,
      'purpose', c.purpose,
      'action', c.action,
      'scope', c.scope,
      'channel', c.channel,
      'decided_at', c.recorded_at,
      'honor_by', c.honor_by,
      'caller_number', c.caller_number,
      'identification', c.identification,
      'call_sid', c.call_sid,
      'record', jsonb_build_object('table', 'consent_events', 'id', c.id, 'event_id', c.event_id),
      'ledger', chained);
  ELSIF l.kind = 'requests' THEN
    SELECT * INTO r FROM requests WHERE id = l.ref_id;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('removed', true, 'ledger', chained);
    END IF;
    RETURN jsonb_build_object(
      'request_id', r.id,
      'request_type', r.request_type,
      'subject', r.caller_number,
      'subject_kind', 'phone',
      'status', 'open',
      'opened_at', r.opened_at,
      'call_sid', r.call_sid,
      'record', jsonb_build_object('table', 'requests', 'id', r.id),
      'ledger', chained);
  ELSIF l.kind = 'request_events' THEN
    SELECT * INTO e FROM request_events WHERE id = l.ref_id;
    SELECT * INTO r FROM requests WHERE id = e.request_id;
    IF e.id IS NULL OR r.id IS NULL THEN
      RETURN jsonb_build_object('removed', true, 'ledger', chained);
    END IF;
    RETURN jsonb_build_object(
      'request_id', r.id,
      'request_type', r.request_type,
      'subject', r.caller_number,
      'subject_kind', 'phone',
      'status', e.status,
      'note', e.note,
      'actor', e.actor,
      'changed_at', e.at,
      'record', jsonb_build_object('table', 'request_events', 'id', e.id),
      'ledger', chained);
  ELSIF l.kind = 'deemed_approvals' THEN
    SELECT * INTO a FROM deemed_approvals WHERE id = l.ref_id;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('removed', true, 'ledger', chained);
    END IF;
    RETURN jsonb_build_object(
      'subject', a.subject,
      'subject_kind', 'phone',
      'reaches', jsonb_build_array(a.subject),
      'purpose', a.purpose,
      'action', 'grant',
      'basis', 'deemed_after_notice',
      'deemed_from', a.deemed_from,
      'notice', jsonb_build_object('id', a.notice_id, 'given_at', a.notice_given_at),
      'record', jsonb_build_object('table', 'deemed_approvals', 'id', a.id),
      'ledger', chained);
  END IF;
  RETURN NULL;
END;
$$;
GRANT EXECUTE ON FUNCTION event_data(bigint) TO ivr_app;
