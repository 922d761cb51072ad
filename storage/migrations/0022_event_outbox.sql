-- Consent reaches the systems that act on it (issue 17): the transactional outbox.
--
-- Every decision (consent_events), request (requests) and request status change
-- (request_events) becomes an event in the same transaction as its evidence: a trigger
-- on the ledger makes it as the row is chained (link_entries inserts the ledger entry in
-- the evidence's own transaction), so there is never one without the other, and the
-- webhook path's statements are unchanged. The event's id is its ledger entry (evt_<seq>),
-- stable however often it is delivered.
--
-- An event is not evidence (it is derived from a chained row, and names its entry), so it
-- is not chained itself: the service reads it, only the trigger writes it, nobody edits it.
CREATE TABLE events (
  seq           bigint PRIMARY KEY,        -- the ledger entry of the row it tells of
  type          text NOT NULL,             -- consent.granted, consent.revoked, request.opened, ...
  ordering_key  text NOT NULL,             -- events with one key reach a subscriber in order
  occurred_at   timestamptz NOT NULL,
  data          jsonb NOT NULL
);
GRANT SELECT ON events TO ivr_app;
CREATE INDEX events_ordering ON events (ordering_key, seq);

-- What a receiver needs to act, read from the row just chained. A revocation's reach is
-- deciding_decision's (migration 0014): its subject, every account its number belongs to,
-- every number of the account it was made for, and the number it was made from (unless
-- that was withheld and a number keyed in instead). A grant reaches its own subject only.
--
-- cpni.deemed_granted (the 30-day CPNI opt-out clock ran out after a complete notice) is
-- not made here: no row is inserted when it happens. It is meant to come from a periodic
-- scan of notices that inserts its event with a seq of its own (see docs/integrations.md).
CREATE FUNCTION ledger_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
  c       consent_events;
  r       requests;
  e       request_events;
  chained jsonb := jsonb_build_object('seq', NEW.seq, 'hash', NEW.hash);
BEGIN
  IF NEW.kind = 'consent_events' THEN
    SELECT * INTO STRICT c FROM consent_events WHERE id = NEW.ref_id;
    INSERT INTO events (seq, type, ordering_key, occurred_at, data) VALUES (
      NEW.seq,
      CASE c.action WHEN 'grant' THEN 'consent.granted' ELSE 'consent.revoked' END,
      c.subject,
      c.recorded_at,
      jsonb_build_object(
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
        'ledger', chained));
  ELSIF NEW.kind = 'requests' THEN
    SELECT * INTO STRICT r FROM requests WHERE id = NEW.ref_id;
    INSERT INTO events (seq, type, ordering_key, occurred_at, data) VALUES (
      NEW.seq, 'request.opened', 'request:' || r.id, r.opened_at,
      jsonb_build_object(
        'request_id', r.id,
        'request_type', r.request_type,
        'subject', r.caller_number,
        'subject_kind', 'phone',
        'status', 'open',
        'opened_at', r.opened_at,
        'call_sid', r.call_sid,
        'record', jsonb_build_object('table', 'requests', 'id', r.id),
        'ledger', chained));
  ELSIF NEW.kind = 'request_events' THEN
    SELECT * INTO STRICT e FROM request_events WHERE id = NEW.ref_id;
    SELECT * INTO STRICT r FROM requests WHERE id = e.request_id;
    INSERT INTO events (seq, type, ordering_key, occurred_at, data) VALUES (
      NEW.seq, 'request.status_changed', 'request:' || r.id, e.at,
      jsonb_build_object(
        'request_id', r.id,
        'request_type', r.request_type,
        'subject', r.caller_number,
        'subject_kind', 'phone',
        'status', e.status,
        'note', e.note,
        'actor', e.actor,
        'changed_at', e.at,
        'record', jsonb_build_object('table', 'request_events', 'id', e.id),
        'ledger', chained));
  END IF;
  RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION ledger_event() FROM PUBLIC;

-- Only the kinds that make events fire it: every other entry pays the WHEN test alone.
CREATE TRIGGER ledger_events AFTER INSERT ON ledger FOR EACH ROW
  WHEN (NEW.kind IN ('consent_events', 'requests', 'request_events'))
  EXECUTE FUNCTION ledger_event();
