-- Staff sessions that end when the account does (issue 16, finding 2).
--
-- A staff-pages session lives in Redis for up to 8 hours. Each page load now asks
-- Postgres whether whoever opened it may still sign in: a token still live, or a user
-- still enabled whose session generation is the one the session was opened under.
-- Disabling a user and setting their password move the generation on, so every session
-- they had ends at its next request; enabling does not move it back (a session ended by
-- a disable stays ended).
--
-- As in 0016, the service's role changes staff_users only through functions that do one
-- thing each, and the trigger still refuses any change of name or role, now also any
-- generation that goes back (which would revive ended sessions).

ALTER TABLE staff_users ADD COLUMN session_generation bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION disable_staff_user(user_name text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH disabled AS (
    UPDATE staff_users SET disabled_at = now(), session_generation = session_generation + 1
    WHERE username = user_name AND disabled_at IS NULL RETURNING id
  )
  SELECT EXISTS (SELECT FROM disabled)
$$;

CREATE FUNCTION enable_staff_user(user_name text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH enabled AS (
    UPDATE staff_users SET disabled_at = NULL WHERE username = user_name AND disabled_at IS NOT NULL RETURNING id
  )
  SELECT EXISTS (SELECT FROM enabled)
$$;

CREATE FUNCTION set_staff_password(user_name text, hash text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  WITH changed AS (
    UPDATE staff_users SET password_hash = hash, session_generation = session_generation + 1
    WHERE username = user_name RETURNING id
  )
  SELECT EXISTS (SELECT FROM changed)
$$;

CREATE OR REPLACE FUNCTION refuse_staff_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.role IS DISTINCT FROM OLD.role OR NEW.username IS DISTINCT FROM OLD.username THEN
    RAISE EXCEPTION 'staff_users: a user''s name and role never change' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.session_generation < OLD.session_generation THEN
    RAISE EXCEPTION 'staff_users: a session generation never goes back' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$;

REVOKE ALL ON FUNCTION enable_staff_user(text), set_staff_password(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION enable_staff_user(text), set_staff_password(text, text) TO ivr_app;
