-- Consent binds the right person (docs/consent-rules.md).
--
-- 1. The decision that decides a subject's consent, in one function every reader uses
--    (the phone line, `ivr consent`, the API, the pages, the suppression list): the
--    latest decision among those that reach the subject. A subject's own decisions
--    reach it; a revocation also reaches every account its number belongs to, every
--    number of the account it was made for, and the number it was made from (revoking
--    is always safe, so it binds as widely as the call can tell). A grant reaches only
--    its own subject. A one-time (per-call) decision counts only until its call ends.
--    Existing rows are untouched: the rule is in how they are read.
CREATE FUNCTION deciding_decision(p_subject text, p_purpose text, p_as_of timestamptz)
RETURNS SETOF consent_events
LANGUAGE sql STABLE
SET search_path = public, pg_temp
AS $$
  SELECT e.* FROM (
    SELECT * FROM consent_events
    WHERE subject = p_subject AND purpose = p_purpose AND recorded_at <= p_as_of
    UNION ALL
    SELECT * FROM consent_events
    WHERE action = 'revoke' AND purpose = p_purpose AND recorded_at <= p_as_of
      AND subject = ANY (ARRAY(
            SELECT phone FROM customer_phones WHERE account_number = p_subject
            UNION SELECT account_number FROM customer_phones WHERE phone = p_subject))
    UNION ALL
    SELECT * FROM consent_events
    WHERE action = 'revoke' AND purpose = p_purpose AND recorded_at <= p_as_of
      AND caller_number = p_subject AND subject <> p_subject
      AND identification <> 'keyed_number'  -- a withheld caller ID stands for no one
  ) e
  WHERE e.scope = 'standing' OR NOT EXISTS (
          SELECT FROM call_endings c WHERE c.call_sid = e.call_sid AND c.received_at <= p_as_of)
  ORDER BY e.recorded_at DESC, e.id DESC
  LIMIT 1
$$;
GRANT EXECUTE ON FUNCTION deciding_decision(text, text, timestamptz) TO ivr_app;

-- A revocation made from a number reaches that number: found by the number it came from.
CREATE INDEX consent_events_revoked_from ON consent_events (caller_number, purpose, recorded_at DESC)
  WHERE action = 'revoke';

-- 2. Twilio's intermediate call statuses (ringing, in-progress, ...) are kept as what
--    they are; only a final status ends a call (call_endings).
CREATE TABLE call_statuses (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_sid           text NOT NULL,
  status             text NOT NULL,
  twilio_timestamp   text,
  received_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_statuses_call ON call_statuses (call_sid, id);
SELECT make_evidence_table('call_statuses'::regclass);
