-- Notices given, requests opened for staff, and revocation deadlines.

-- Every time a caller heard a legal notice (the CPNI opt-out clock starts here).
CREATE TABLE notices (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  call_sid       text NOT NULL REFERENCES calls (call_sid),
  seq            integer NOT NULL,
  step           text NOT NULL,
  notice         text NOT NULL,
  notice_text    text NOT NULL,
  text_sha256    text NOT NULL,
  lang           text NOT NULL,
  flow_version   text NOT NULL REFERENCES flow_versions (version),
  caller_number  text NOT NULL,
  given_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (call_sid, seq, notice)
);
CREATE INDEX notices_caller ON notices (caller_number, notice, given_at);

-- Requests callers make on the line (removal of referral data, of forum posts); the
-- reference number read to the caller is the id.
CREATE TABLE requests (
  id             bigint GENERATED ALWAYS AS IDENTITY (START WITH 100001) PRIMARY KEY,
  call_sid       text NOT NULL REFERENCES calls (call_sid),
  seq            integer NOT NULL,
  request_type   text NOT NULL,
  caller_number  text NOT NULL,
  recording_sid  text,             -- the caller's spoken description, if they gave one
  lang           text NOT NULL,
  opened_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (call_sid, seq)
);

-- What staff did with each request, as appended events (the latest is its status).
CREATE TABLE request_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id  bigint NOT NULL REFERENCES requests (id),
  status      text NOT NULL,
  note        text,
  actor       text NOT NULL,
  at          timestamptz NOT NULL DEFAULT now()
);

-- The date by which a revocation must be honored (telemarketing: 10 business days).
ALTER TABLE consent_events ADD COLUMN honor_by date;

CREATE TRIGGER notices_append_only BEFORE UPDATE OR DELETE ON notices
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER requests_append_only BEFORE UPDATE OR DELETE ON requests
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER request_events_append_only BEFORE UPDATE OR DELETE ON request_events
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER notices_no_truncate BEFORE TRUNCATE ON notices
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER requests_no_truncate BEFORE TRUNCATE ON requests
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER request_events_no_truncate BEFORE TRUNCATE ON request_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();
