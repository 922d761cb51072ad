-- Recordings kept: the media fetched from Twilio, its SHA-256 chained, and the work queue.

-- Evidence: a recording's media was fetched and kept; its hash and size are chained.
CREATE TABLE recording_media (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  recording_sid  text NOT NULL UNIQUE,
  call_sid       text NOT NULL,
  sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
  content_type   text NOT NULL,
  stored_in      text NOT NULL CHECK (stored_in IN ('postgres', 'directory')),
  fetched_at     timestamptz NOT NULL DEFAULT now()
);
SELECT make_evidence_table('recording_media');

-- The bytes, when kept in Postgres (RECORDING_STORE=postgres, the default). Not chained
-- row by row: recording_media chains their SHA-256, which any reader can recompute.
CREATE TABLE recording_blobs (
  recording_sid  text PRIMARY KEY,
  media          bytea NOT NULL
);
GRANT SELECT, INSERT ON recording_blobs TO ivr_app;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON recording_blobs
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();

-- Work, not evidence: which recordings still need fetching, and how it went so far.
-- Survives restarts; any process may take a due row (leases via next_attempt_at).
CREATE TABLE recording_fetches (
  recording_sid    text PRIMARY KEY,
  call_sid         text NOT NULL,
  account_sid      text NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fetched', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_fetches_due ON recording_fetches (next_attempt_at) WHERE status = 'pending';
GRANT SELECT, INSERT, UPDATE ON recording_fetches TO ivr_app;
GRANT SELECT ON recording_media TO ivr_app;
