-- Customers who can be identified on a call, and every PIN check made.

-- The customer directory (loaded with `ivr customers import`). Not evidence: a
-- customer's PIN or numbers change; what was decided stays in consent_events.
CREATE TABLE customers (
  account_number  text PRIMARY KEY CHECK (account_number ~ '^[0-9]{4,20}$'),
  name            text NOT NULL,
  pin_hash        text,           -- salted scrypt (see ivr/pins.py); NULL: no PIN set
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_phones (
  phone           text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
  account_number  text NOT NULL REFERENCES customers (account_number) ON DELETE CASCADE,
  PRIMARY KEY (phone, account_number)
);

-- Every PIN check, right or wrong (never the digits): the lockout counts these, and
-- they show who tried to act on an account, from which call.
CREATE TABLE pin_checks (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_number  text NOT NULL,
  call_sid        text NOT NULL,
  ok              boolean NOT NULL,
  checked_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pin_checks_recent ON pin_checks (account_number, checked_at DESC);

CREATE TRIGGER pin_checks_append_only BEFORE UPDATE OR DELETE ON pin_checks
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
CREATE TRIGGER pin_checks_no_truncate BEFORE TRUNCATE ON pin_checks
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_evidence_change();

-- Whom a decision binds: the calling number, or an identified customer's account.
ALTER TABLE consent_events
  ADD COLUMN subject_kind text NOT NULL DEFAULT 'phone' CHECK (subject_kind IN ('phone', 'customer'));
