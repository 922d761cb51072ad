-- Recordings sealed at rest (storage/sealed_media.py): recording_blobs.media holds the
-- sealed bytes and key_id names the master key that sealed them; NULL is a recording
-- kept in clear before sealing existed (still read as it is). The key id lets an
-- operator see which blobs still need an old key before retiring it:
--   SELECT key_id, count(*) FROM recording_blobs GROUP BY key_id;
ALTER TABLE recording_blobs ADD COLUMN key_id text CHECK (key_id ~ '^rk-[0-9a-f]{16}$');
