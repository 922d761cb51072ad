-- Evidence schema v1: flow versions, calls, keypresses, consent events, call endings.
--
-- Evidence is append-only (DESIGN rule 2): rows are inserted once and never changed.
-- The triggers below make Postgres itself refuse UPDATE, DELETE and TRUNCATE, so a
-- bug or a hand-typed statement cannot quietly rewrite history.

CREATE FUNCTION refuse_evidence_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'evidence table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- The exact definition of every flow version ever served, by content hash.
CREATE TABLE flow_versions (
  version          text PRIMARY KEY CHECK (version ~ '^[0-9a-f]{64}$'),
  name             text NOT NULL,
  definition       jsonb NOT NULL,
  first_served_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per call, written when the call is answered.
CREATE TABLE calls (
  call_sid       text PRIMARY KEY,
  account_sid    text NOT NULL,
  caller_number  text NOT NULL,          -- ANI as Twilio reported it (From)
  dialed_number  text NOT NULL,          -- To
  direction      text NOT NULL,
  flow_name      text NOT NULL,
  flow_version   text NOT NULL REFERENCES flow_versions (version),
  started_at     timestamptz NOT NULL DEFAULT now()
);

-- Every answer to a prompt: valid keys, wrong keys and silences alike.
CREATE TABLE keypresses (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_sid           text NOT NULL REFERENCES calls (call_sid),
  seq                integer NOT NULL CHECK (seq >= 0),   -- which prompt it answered
  step               text NOT NULL,
  digits             text NOT NULL,                       -- '' for no input
  finished_on_key    text NOT NULL,
  outcome            text NOT NULL CHECK (outcome IN ('valid', 'invalid', 'no_input')),
  prompt_text        text NOT NULL,                       -- exactly what was heard before
  lang               text NOT NULL,
  flow_version       text NOT NULL REFERENCES flow_versions (version),
  idempotency_token  text NOT NULL,
  received_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (call_sid, seq)
);

-- Consent decisions: the fields of DESIGN rule 5.
CREATE TABLE consent_events (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  recorded_at        timestamptz NOT NULL DEFAULT now(),  -- server time, UTC
  call_sid           text NOT NULL REFERENCES calls (call_sid),
  seq                integer NOT NULL,                    -- the confirming keypress
  subject            text NOT NULL,                       -- whom the decision binds
  purpose            text NOT NULL,
  action             text NOT NULL CHECK (action IN ('grant', 'revoke')),
  channel            text NOT NULL CHECK (channel IN ('keypad', 'dialing_string', 'verbal', 'agent_assisted')),
  raw_digits         text NOT NULL,
  caller_number      text NOT NULL,
  dialed_number      text NOT NULL,
  identification     text NOT NULL,
  agent              text,
  recording_sid      text,
  flow_name          text NOT NULL,
  flow_version       text NOT NULL REFERENCES flow_versions (version),
  prompt_text        text NOT NULL,
  lang               text NOT NULL,
  idempotency_token  text NOT NULL,
  UNIQUE (call_sid, seq)
);
CREATE INDEX consent_events_subject_purpose ON consent_events (subject, purpose, recorded_at DESC);

-- How each call ended (the status callback); abandoned_at_step is set when the caller
-- hung up before the flow reached its end.
CREATE TABLE call_endings (
  call_sid           text PRIMARY KEY,
  status             text NOT NULL,
  duration_s         integer,
  twilio_timestamp   text,
  abandoned_at_step  text,
  received_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER calls_append_only BEFORE UPDATE OR DELETE ON calls
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER keypresses_append_only BEFORE UPDATE OR DELETE ON keypresses
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER call_endings_append_only BEFORE UPDATE OR DELETE ON call_endings
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER flow_versions_append_only BEFORE UPDATE OR DELETE ON flow_versions
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();

CREATE TRIGGER calls_no_truncate BEFORE TRUNCATE ON calls
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER keypresses_no_truncate BEFORE TRUNCATE ON keypresses
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON consent_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER call_endings_no_truncate BEFORE TRUNCATE ON call_endings
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER flow_versions_no_truncate BEFORE TRUNCATE ON flow_versions
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
