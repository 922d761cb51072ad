-- cpni.deemed_granted (issue 17, item 1): the moment CPNI approval is assumed is not a row
-- anyone inserts, so the service notes it as one. A periodic scan finds each number whose
-- first complete CPNI notice is older than the opt-out window with no decision reaching
-- the number, and chains a deemed_approvals row; the ledger trigger makes the event from
-- it, in the same transaction, as it does for decisions.
CREATE TABLE deemed_approvals (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject          text NOT NULL,          -- the number the notice was given to
  purpose          text NOT NULL,
  notice_id        bigint NOT NULL REFERENCES notices (id),
  notice_given_at  timestamptz NOT NULL,
  deemed_from      timestamptz NOT NULL,   -- the notice's time plus the opt-out window
  noted_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subject, purpose)                -- noted once, whichever process scans first
);
SELECT make_evidence_table('deemed_approvals');

-- Nothing reads events by ordering key (deliveries carry their own): one index fewer on
-- the commit path.
DROP INDEX events_ordering;

CREATE OR REPLACE FUNCTION ledger_event() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
  c       consent_events;
  r       requests;
  e       request_events;
  a       deemed_approvals;
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
  ELSIF NEW.kind = 'deemed_approvals' THEN
    SELECT * INTO STRICT a FROM deemed_approvals WHERE id = NEW.ref_id;
    INSERT INTO events (seq, type, ordering_key, occurred_at, data) VALUES (
      NEW.seq, a.purpose || '.deemed_granted', a.subject, a.deemed_from,
      jsonb_build_object(
        'subject', a.subject,
        'subject_kind', 'phone',
        'reaches', jsonb_build_array(a.subject),
        'purpose', a.purpose,
        'action', 'grant',
        'basis', 'deemed_after_notice',
        'deemed_from', a.deemed_from,
        'notice', jsonb_build_object('id', a.notice_id, 'given_at', a.notice_given_at),
        'record', jsonb_build_object('table', 'deemed_approvals', 'id', a.id),
        'ledger', chained));
  END IF;
  RETURN NULL;
END;
$$;

DROP TRIGGER ledger_events ON ledger;
CREATE TRIGGER ledger_events AFTER INSERT ON ledger FOR EACH ROW
  WHEN (NEW.kind IN ('consent_events', 'requests', 'request_events', 'deemed_approvals'))
  EXECUTE FUNCTION ledger_event();
