-- Subscriptions to the outbox's events, and their deliveries (issue 17, items 2 and 3).
--
-- A subscription holds the secret the service signs with, so the service reads it; it is
-- written only through the functions below (made, disabled and enabled, its secret
-- rotated, removed), like tokens and staff users (migration 0016). Removing keeps the row
-- (evidence of deliveries names it) and forgets the secrets.
CREATE TABLE subscriptions (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name             text NOT NULL,
  url              text NOT NULL CHECK (url ~ '^https?://'),
  event_types      text[] NOT NULL CHECK (cardinality(event_types) >= 1),
  scheme           text NOT NULL CHECK (scheme IN ('v1', 'v1a')),   -- HMAC-SHA256, or Ed25519
  secret           text CHECK (secret ~ '^(whsec|whsk)_'),
  previous_secret  text,                  -- still signs beside the new one until previous_until
  previous_until   timestamptz,
  starts_after     bigint NOT NULL,       -- its events are those after this one (no history replayed)
  created_at       timestamptz NOT NULL DEFAULT now(),
  disabled_at      timestamptz,
  disabled_reason  text,
  removed_at       timestamptz,
  CHECK ((removed_at IS NULL) = (secret IS NOT NULL))
);
GRANT SELECT ON subscriptions TO ivr_app;

-- How far each subscription's events have been handed to deliveries (the workers' own
-- bookkeeping, so theirs to update).
CREATE TABLE subscription_cursors (
  subscription_id  bigint PRIMARY KEY REFERENCES subscriptions (id),
  fanned_through   bigint NOT NULL
);
GRANT SELECT, UPDATE ON subscription_cursors TO ivr_app;

-- One event for one subscription, until it is delivered or given up (dead-lettered).
-- A worker leases it while it sends (leased_until): one that dies mid-send loses nothing,
-- another takes it up once the lease runs out.
CREATE TABLE deliveries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  bigint NOT NULL REFERENCES subscriptions (id),
  seq              bigint NOT NULL REFERENCES events (seq),
  ordering_key     text NOT NULL,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  leased_until     timestamptz,
  last_status      integer,
  last_error       text,
  finished_at      timestamptz,
  UNIQUE (subscription_id, seq)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
-- "Is an earlier event for this subject still on its way to this subscription?"
CREATE INDEX deliveries_in_order ON deliveries (subscription_id, ordering_key, seq) WHERE state = 'pending';
CREATE INDEX deliveries_dead ON deliveries (subscription_id, finished_at) WHERE state = 'dead';
GRANT SELECT, INSERT, UPDATE ON deliveries TO ivr_app;

CREATE FUNCTION create_subscription(sub_name text, sub_url text, types text[], sub_scheme text, sub_secret text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  new_id bigint;
BEGIN
  INSERT INTO subscriptions (name, url, event_types, scheme, secret, starts_after)
  VALUES (sub_name, sub_url, types, sub_scheme, sub_secret, coalesce((SELECT max(seq) FROM events), 0))
  RETURNING id INTO new_id;
  INSERT INTO subscription_cursors (subscription_id, fanned_through)
  SELECT new_id, starts_after FROM subscriptions WHERE id = new_id;
  RETURN new_id;
END;
$$;

-- reason NULL enables; otherwise disables (an operator, or the endpoint answering 410).
CREATE FUNCTION set_subscription_disabled(sub_id bigint, reason text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH changed AS (
    UPDATE subscriptions
    SET disabled_at = CASE WHEN reason IS NULL THEN NULL ELSE now() END, disabled_reason = reason
    WHERE id = sub_id AND removed_at IS NULL AND (disabled_at IS NULL) = (reason IS NOT NULL)
    RETURNING id
  )
  SELECT EXISTS (SELECT FROM changed)
$$;

-- The new secret signs from now on; the current one signs beside it for grace.
CREATE FUNCTION rotate_subscription_secret(sub_id bigint, new_secret text, grace interval) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH rotated AS (
    UPDATE subscriptions
    SET previous_secret = secret, previous_until = now() + grace, secret = new_secret
    WHERE id = sub_id AND removed_at IS NULL
    RETURNING id
  )
  SELECT EXISTS (SELECT FROM rotated)
$$;

-- Removed: nothing more is sent, the secrets are forgotten, what is still due is dropped
-- (delivered and dead deliveries stay, as the record of what was sent).
CREATE FUNCTION remove_subscription(sub_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE subscriptions SET removed_at = now(), secret = NULL, previous_secret = NULL, previous_until = NULL
  WHERE id = sub_id AND removed_at IS NULL;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  DELETE FROM deliveries WHERE subscription_id = sub_id AND state = 'pending';
  RETURN true;
END;
$$;

REVOKE ALL ON FUNCTION create_subscription(text, text, text[], text, text), set_subscription_disabled(bigint, text),
  rotate_subscription_secret(bigint, text, interval), remove_subscription(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_subscription(text, text, text[], text, text), set_subscription_disabled(bigint, text),
  rotate_subscription_secret(bigint, text, interval), remove_subscription(bigint) TO ivr_app;
