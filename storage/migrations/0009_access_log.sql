-- Who looked at which evidence, when, from where, and why: appended on every read of
-- evidence through the API or the pages; chained like the evidence itself.
CREATE TABLE access_log (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  token_id  bigint REFERENCES api_tokens (id),
  actor     text NOT NULL,
  role      text NOT NULL,
  action    text NOT NULL,        -- e.g. subject.consents, call.evidence, call.bundle, suppression
  target    text NOT NULL,        -- the number, CallSid, recording or query looked at
  reason    text,                 -- what the staff member typed, if anything
  remote    text,
  at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_at ON access_log (at DESC);
SELECT make_evidence_table('access_log');
