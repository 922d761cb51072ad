-- PIN guessing (issue 16, finding 11): staff unlocks as evidence, and peppered PIN hashes.
--
-- Lockouts are worked out from the chained pin_checks rows alone (flows/pin_lockout.py):
-- wrong PINs since the account's last right PIN or its last unlock. The one thing that
-- is not a PIN check is a staff member restoring PIN entry, so that is kept here, as
-- chained evidence of who did it, when and why. No counter is kept anywhere.

CREATE TABLE pin_unlocks (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  account_number  text NOT NULL CHECK (account_number ~ '^[0-9]{4,20}$'),
  actor           text NOT NULL CHECK (length(actor) > 0),
  reason          text NOT NULL CHECK (length(reason) > 0),
  unlocked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pin_unlocks_account ON pin_unlocks (account_number, unlocked_at DESC);
SELECT make_evidence_table('pin_unlocks');
-- Lifting a lock is for staff (`ivr customers unlock`, as the tables' owner): the service
-- reads unlocks, and cannot write one to buy a guesser more tries.
REVOKE INSERT ON pin_unlocks FROM ivr_app;

-- PINs hashed before the pepper (`scrypt$…`) are replaced with a peppered hash
-- (`hmac-scrypt$…`) after their next right PIN. The service cannot UPDATE the directory
-- (migration 0016), so it asks this function, which replaces only:
--   * a hash from before the pepper, and only with a peppered one (once per account:
--     a peppered hash is never replaced this way);
--   * when the stored hash is still the one the PIN was checked against (an import in
--     between wins);
--   * after a right PIN for that account was chained in the last five minutes: anyone
--     holding the service's login who tried to set a PIN of their own choosing would
--     have to chain a right PIN check first, in evidence that cannot be taken back.
CREATE FUNCTION upgrade_pin_hash(account text, old_hash text, new_hash text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH upgraded AS (
    UPDATE customers SET pin_hash = new_hash
    WHERE account_number = account
      AND pin_hash = old_hash
      AND old_hash LIKE 'scrypt$%'
      AND new_hash LIKE 'hmac-scrypt$%'
      AND EXISTS (
        SELECT FROM pin_checks c JOIN ledger l ON l.kind = 'pin_checks' AND l.ref_id = c.id
        WHERE c.account_number = account AND c.ok AND c.checked_at > now() - interval '5 minutes')
    RETURNING 1
  )
  SELECT EXISTS (SELECT FROM upgraded)
$$;
REVOKE ALL ON FUNCTION upgrade_pin_hash(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION upgrade_pin_hash(text, text, text) TO ivr_app;

-- The lockout reads an account's checks since its last right one, oldest first.
CREATE INDEX pin_checks_account_ok ON pin_checks (account_number, checked_at) WHERE ok;
