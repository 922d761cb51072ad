-- Receipts back into the ledger (issue 17, item 4): each event delivered, and each one a
-- receiver says it applied, is chained evidence. A revocation's evidence then shows when it
-- was received (the call), when system X was told (event_deliveries), and when X applied
-- it (event_applications).

-- Once per subscription and event: a redelivery (at-least-once) adds no second receipt.
CREATE TABLE event_deliveries (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  bigint NOT NULL REFERENCES subscriptions (id),
  event_id         text NOT NULL,          -- evt_<seq>, the webhook-id the receiver got
  seq              bigint NOT NULL,        -- the ledger entry the event tells of
  attempt          integer NOT NULL,
  http_status      integer NOT NULL,
  url              text NOT NULL,          -- where it was delivered (the subscription's URL then)
  delivered_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, seq)
);
SELECT make_evidence_table('event_deliveries');

-- A receiver's word that it acted on the event, given with its integration token.
CREATE TABLE event_applications (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  bigint NOT NULL REFERENCES subscriptions (id),
  event_id         text NOT NULL,
  seq              bigint NOT NULL,
  token_id         bigint NOT NULL REFERENCES api_tokens (id),
  detail           text,                   -- what the receiver says it did, if anything
  applied_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, seq)
);
SELECT make_evidence_table('event_applications');

-- Integration tokens: one receiver's, scoped to its subscription (and only that).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('agent', 'staff', 'admin', 'integration'));
ALTER TABLE api_tokens ADD COLUMN subscription_id bigint REFERENCES subscriptions (id);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_integration_scoped
  CHECK ((role = 'integration') = (subscription_id IS NOT NULL));

CREATE FUNCTION create_api_token(token_name text, token_role text, hash text, token_subscription bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO api_tokens (name, role, token_hash, subscription_id)
  VALUES (token_name, token_role, hash, token_subscription) RETURNING id
$$;
REVOKE ALL ON FUNCTION create_api_token(text, text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_api_token(text, text, text, bigint) TO ivr_app;

-- A token's scope never changes either (migration 0016's rule, with the new column).
CREATE OR REPLACE FUNCTION refuse_token_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'api_tokens: a token is revoked, never deleted' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.name IS DISTINCT FROM OLD.name OR NEW.role IS DISTINCT FROM OLD.role
     OR NEW.token_hash IS DISTINCT FROM OLD.token_hash OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR NEW.subscription_id IS DISTINCT FROM OLD.subscription_id
     OR (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) THEN
    RAISE EXCEPTION 'api_tokens: only revoking is allowed' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$;
