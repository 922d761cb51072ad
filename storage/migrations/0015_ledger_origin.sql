-- Which ledger this is: checkpoints name it (their origin), so a checkpoint of one
-- ledger is never taken for another's — a test database, a restored copy, a new install.
CREATE TABLE ledger_origin (
  origin      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_origin DEFAULT VALUES;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ledger_origin
  FOR EACH ROW EXECUTE FUNCTION refuse_evidence_change();
GRANT SELECT ON ledger_origin TO ivr_app;
