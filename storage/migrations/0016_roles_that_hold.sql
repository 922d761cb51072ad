-- Roles that hold: the service logs in as ivr_app itself and can add evidence, never
-- escalate.
--
-- Before this, the service connected as the tables' owner and only SET ROLE ivr_app,
-- so RESET ROLE gave the owner's rights back; and ivr_app itself could rewrite tokens
-- and staff roles, the customer directory, and chain any text it liked. Now:
--   * ivr_app can log in (the service's DATABASE_URL); migrations, retention and the
--     customer directory use the owner (MIGRATION_DATABASE_URL);
--   * tokens and staff users are created and revoked through functions that do only
--     that — no role change, no un-revoking, even for the owner (a trigger refuses);
--   * ledger_append renders each entry's content from the row itself;
--   * evidence is deleted only by a retention run of the table's owner, however the
--     retention switch is set.

DO $$
BEGIN
  ALTER ROLE ivr_app LOGIN;
EXCEPTION WHEN insufficient_privilege THEN
  -- An owner without CREATEROLE: the operator makes the login (documented in README).
  RAISE NOTICE 'could not let ivr_app log in (needs CREATEROLE); DATABASE_URL must name a member of ivr_app';
END;
$$;

-- Deletion needs the retention switch AND the table owner's rights: the service's own
-- role (which has no DELETE anyway) cannot flip its way past this.
CREATE OR REPLACE FUNCTION refuse_evidence_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('ivr.retention_run', true) = 'on'
     AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'evidence table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- The chain's content comes from the rows themselves. Nobody hands text to be chained:
-- link_entries (the hashing and linking, under the ledger's lock) is the owner's alone,
-- called by ledger_append, which renders the rows named by (kind, id), and by
-- append_evidence, which renders the rows it has just inserted (no second read).
CREATE FUNCTION link_entries(kinds text[], ref_ids bigint[], contents text[])
RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
DECLARE
  head_seq  bigint;
  head_hash text;
  i         integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7392411508);  -- the ledger's one writer at a time
  SELECT seq, hash INTO head_seq, head_hash FROM ledger ORDER BY seq DESC LIMIT 1;
  IF head_seq IS NULL THEN
    head_seq := 0;
    head_hash := repeat('0', 64);
  END IF;
  FOR i IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
    -- UNIQUE (kind, ref_id): a row is chained once, whoever asks again.
    INSERT INTO ledger (seq, kind, ref_id, prev_hash, hash)
    VALUES (head_seq + 1, kinds[i], ref_ids[i], head_hash,
            encode(sha256(convert_to(contents[i] || head_hash, 'UTF8')), 'hex'))
    RETURNING seq, hash INTO head_seq, head_hash;
  END LOOP;
  RETURN head_hash;
END;
$$;
REVOKE ALL ON FUNCTION link_entries(text[], bigint[], text[]) FROM PUBLIC;

-- Is t a table whose rows are chained (it carries the append-only trigger)?
CREATE FUNCTION is_evidence_table(t text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT t <> 'ledger' AND EXISTS (
    SELECT FROM pg_trigger WHERE tgrelid = to_regclass(quote_ident(t)) AND tgfoid = 'refuse_evidence_change'::regproc)
$$;

CREATE FUNCTION ledger_append(kinds text[], ref_ids bigint[])
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'  -- the canonical form renders timestamps in UTC, whatever the session says
AS $$
DECLARE
  contents  text[] := '{}';
  content   text;
  i         integer;
BEGIN
  FOR i IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
    IF NOT is_evidence_table(kinds[i]) THEN
      RAISE EXCEPTION 'ledger_append: % is not an evidence table', kinds[i];
    END IF;
    EXECUTE format('SELECT canonical_json(to_jsonb(t.*)) FROM %I t WHERE t.id = $1', kinds[i])
      INTO content USING ref_ids[i];
    IF content IS NULL THEN
      RAISE EXCEPTION 'ledger_append: % id % does not exist', kinds[i], ref_ids[i];
    END IF;
    contents := contents || content;
  END LOOP;
  RETURN link_entries(kinds, ref_ids, contents);
END;
$$;
REVOKE ALL ON FUNCTION ledger_append(text[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_append(text[], bigint[]) TO ivr_app;

-- Chaining given text is no longer anyone's to ask for.
DROP FUNCTION ledger_append(text[], bigint[], text[]);

-- append_evidence as before, with the owner's rights to reach link_entries; so it
-- inserts only where its caller (the session's login) may insert itself.
CREATE OR REPLACE FUNCTION append_evidence(tables text[], rows jsonb[]) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
  i        integer;
  columns  text;
  new_id   bigint;
  content  jsonb;
  kinds    text[] := '{}';
  ids      bigint[] := '{}';
  contents text[] := '{}';
BEGIN
  FOR i IN 1 .. coalesce(array_length(tables, 1), 0) LOOP
    IF NOT is_evidence_table(tables[i]) THEN
      RAISE EXCEPTION 'append_evidence: % is not an evidence table', tables[i];
    END IF;
    IF NOT has_table_privilege(session_user, quote_ident(tables[i]), 'INSERT') THEN
      RAISE EXCEPTION 'append_evidence: % may not insert into %', session_user, tables[i]
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT string_agg(quote_ident(k), ', ') INTO columns FROM jsonb_object_keys(rows[i]) AS k;
    EXECUTE format(
      'INSERT INTO %1$I (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$I, $1)
       ON CONFLICT DO NOTHING RETURNING id, to_jsonb(%1$I.*)', tables[i], columns)
      INTO new_id, content USING rows[i];
    IF new_id IS NOT NULL THEN
      kinds := kinds || tables[i];
      ids := ids || new_id;
      contents := contents || canonical_json(content);
    END IF;
  END LOOP;
  IF array_length(kinds, 1) IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN link_entries(kinds, ids, contents);
END;
$$;

-- Tokens: created and revoked, nothing else. The service and `ivr tokens` go through
-- these; the table itself is read-only to ivr_app.
REVOKE INSERT, UPDATE, DELETE ON api_tokens FROM ivr_app;

CREATE FUNCTION create_api_token(token_name text, token_role text, hash text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO api_tokens (name, role, token_hash) VALUES (token_name, token_role, hash) RETURNING id
$$;

CREATE FUNCTION revoke_api_token(token_id bigint) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH revoked AS (
    UPDATE api_tokens SET revoked_at = now() WHERE id = token_id AND revoked_at IS NULL RETURNING id
  )
  SELECT EXISTS (SELECT FROM revoked)
$$;

-- Whoever updates: a token's name, role and hash never change; a revocation stands.
CREATE FUNCTION refuse_token_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'api_tokens: a token is revoked, never deleted' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.name IS DISTINCT FROM OLD.name OR NEW.role IS DISTINCT FROM OLD.role
     OR NEW.token_hash IS DISTINCT FROM OLD.token_hash OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) THEN
    RAISE EXCEPTION 'api_tokens: only revoking is allowed' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$;
-- (Not refuse_evidence_change: a table with that trigger counts as evidence, to be chained.)
CREATE TRIGGER only_revoke BEFORE UPDATE OR DELETE ON api_tokens
  FOR EACH ROW EXECUTE FUNCTION refuse_token_change();

-- Staff users: created and disabled; a role is what it was made with.
REVOKE INSERT, UPDATE, DELETE ON staff_users FROM ivr_app;

CREATE FUNCTION create_staff_user(user_name text, user_role text, hash text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO staff_users (username, role, password_hash) VALUES (user_name, user_role, hash) RETURNING id
$$;

CREATE FUNCTION disable_staff_user(user_name text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH disabled AS (
    UPDATE staff_users SET disabled_at = now() WHERE username = user_name AND disabled_at IS NULL RETURNING id
  )
  SELECT EXISTS (SELECT FROM disabled)
$$;

CREATE FUNCTION refuse_staff_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.role IS DISTINCT FROM OLD.role OR NEW.username IS DISTINCT FROM OLD.username THEN
    RAISE EXCEPTION 'staff_users: a user''s name and role never change' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER fixed_role BEFORE UPDATE ON staff_users FOR EACH ROW EXECUTE FUNCTION refuse_staff_role_change();

REVOKE ALL ON FUNCTION create_api_token(text, text, text), revoke_api_token(bigint),
  create_staff_user(text, text, text), disable_staff_user(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION create_api_token(text, text, text), revoke_api_token(bigint),
  create_staff_user(text, text, text), disable_staff_user(text) TO ivr_app;

-- The customer directory binds numbers to accounts (who a caller is taken to be): the
-- operator maintains it (`ivr customers import`, as the owner), the service only reads it.
REVOKE INSERT, UPDATE, DELETE ON customers, customer_phones FROM ivr_app;

-- Retention runs are the owner's: the service cannot write a tombstone.
REVOKE INSERT ON retention_runs FROM ivr_app;
