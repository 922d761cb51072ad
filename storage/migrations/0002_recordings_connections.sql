-- Verbal statements and connections (transfers to agents, returns to them).

-- One row per <Record> that produced a recording: the statement a verbal decision rests on.
CREATE TABLE recordings (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_sid           text NOT NULL REFERENCES calls (call_sid),
  seq                integer NOT NULL,
  step               text NOT NULL,
  recording_sid      text NOT NULL UNIQUE,
  recording_url      text NOT NULL,
  duration_s         integer NOT NULL,
  ended_by           text NOT NULL,                 -- the key pressed, or 'hangup'
  prompt_text        text NOT NULL,                 -- the announcement heard before the beep
  lang               text NOT NULL,
  flow_version       text NOT NULL REFERENCES flow_versions (version),
  idempotency_token  text NOT NULL,
  received_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (call_sid, seq)
);

-- Twilio's recording status callbacks, as they arrive (any order relative to the call).
CREATE TABLE recording_statuses (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recording_sid  text NOT NULL,
  call_sid       text NOT NULL,
  status         text NOT NULL,
  duration_s     integer,
  recording_url  text,
  error_code     text,
  received_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (recording_sid, status)
);

-- How each transfer or return leg ended.
CREATE TABLE connections (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_sid           text NOT NULL REFERENCES calls (call_sid),
  seq                integer NOT NULL,
  step               text NOT NULL,
  destination        text NOT NULL,
  status             text NOT NULL,
  connected          boolean NOT NULL,
  idempotency_token  text NOT NULL,
  received_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (call_sid, seq)
);

CREATE TRIGGER recordings_append_only BEFORE UPDATE OR DELETE ON recordings
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER recording_statuses_append_only BEFORE UPDATE OR DELETE ON recording_statuses
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER connections_append_only BEFORE UPDATE OR DELETE ON connections
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER recordings_no_truncate BEFORE TRUNCATE ON recordings
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER recording_statuses_no_truncate BEFORE TRUNCATE ON recording_statuses
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER connections_no_truncate BEFORE TRUNCATE ON connections
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
