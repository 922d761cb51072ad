-- Staff who sign in to the web pages with a username and password (scrypt-hashed).
CREATE TABLE staff_users (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{2,64}$'),
  role           text NOT NULL CHECK (role IN ('staff', 'admin')),
  password_hash  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  disabled_at    timestamptz
);
GRANT SELECT, INSERT, UPDATE ON staff_users TO ivr_app;
