-- API tokens, agent transfers and their events, one-time (per-call) decisions.

-- Bearer tokens for the agent and staff APIs; only their SHA-256 is kept (they are
-- 256-bit random strings, so a plain hash is enough; a KDF would only slow requests).
CREATE TABLE api_tokens (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL,
  role        text NOT NULL CHECK (role IN ('agent', 'staff', 'admin')),
  token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
GRANT SELECT, INSERT, UPDATE ON api_tokens TO ivr_app;

-- An agent moved a live caller into a flow (evidence: who asked, for which call, where to).
CREATE TABLE transfers (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transfer_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  call_sid    text NOT NULL,
  flow_name   text NOT NULL,
  return_to   text NOT NULL,
  agent       text NOT NULL,
  token_id    bigint NOT NULL REFERENCES api_tokens (id),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfers_call ON transfers (call_sid, created_at DESC);
SELECT make_evidence_table('transfers');

-- What happened to it: requested, started, decision, returned, return_failed,
-- abandoned, failed. The latest is its status.
CREATE TABLE transfer_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transfer_id  uuid NOT NULL REFERENCES transfers (transfer_id),
  kind         text NOT NULL,
  detail       jsonb NOT NULL DEFAULT '{}',
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfer_events_transfer ON transfer_events (transfer_id, id);
SELECT make_evidence_table('transfer_events');

-- Keypresses made during a transfer name the agent, as decisions do.
ALTER TABLE keypresses ADD COLUMN agent text;
-- 'call': a one-time approval, in effect only until the call ends.
ALTER TABLE consent_events
  ADD COLUMN scope text NOT NULL DEFAULT 'standing' CHECK (scope IN ('standing', 'call'));
