-- Consents from other channels (issue 17, item 8): a decision taken elsewhere — a web
-- form, a written form, an agent outside a call — recorded through POST /api/consents.
--
-- It is a consent_events row like any other, so every reader (deciding_decision, the
-- lookups, receipts, the suppression list) and the outbox (link_entries makes
-- consent.granted / consent.revoked from consent_events) see it unchanged.
--
-- Such a decision has no call. Rather than invent a synthetic call (a calls row for a
-- call that never happened would show in call lists, counts and bundles as if it had),
-- call_sid, seq, flow_name and flow_version may be NULL — but only for the new channels:
-- a phone channel still needs all four, and a new channel may have none of them.
ALTER TABLE consent_events DROP CONSTRAINT consent_events_channel_check;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_channel_check
  CHECK (channel IN ('keypad', 'dialing_string', 'verbal', 'agent_assisted', 'web_form', 'written_form', 'agent'));
ALTER TABLE consent_events
  ALTER COLUMN call_sid DROP NOT NULL,
  ALTER COLUMN seq DROP NOT NULL,
  ALTER COLUMN flow_name DROP NOT NULL,
  ALTER COLUMN flow_version DROP NOT NULL;
ALTER TABLE consent_events ADD CONSTRAINT consent_events_call_by_channel CHECK (
  CASE WHEN channel IN ('web_form', 'written_form', 'agent')
       THEN call_sid IS NULL AND seq IS NULL AND flow_name IS NULL AND flow_version IS NULL
       ELSE call_sid IS NOT NULL AND seq IS NOT NULL AND flow_name IS NOT NULL AND flow_version IS NOT NULL
  END);

-- What stands behind a decision from another channel: the exact text the person saw or
-- signed and its SHA-256, the document if there is one (bytes, type, SHA-256, size), who
-- collected it and when, and how the person was verified ('none' only for a revocation:
-- revoking always counts, docs/consent-rules.md). The hashes and size are checked here
-- against what is stored, so no writer can store one that does not match.
CREATE TABLE consent_documents (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consent_event_id  bigint NOT NULL UNIQUE REFERENCES consent_events (id),
  text_shown        text NOT NULL,
  text_sha256       text NOT NULL CHECK (text_sha256 = encode(sha256(convert_to(text_shown, 'UTF8')), 'hex')),
  document          bytea,
  media_type        text CHECK (media_type IN ('application/pdf', 'image/png', 'image/jpeg')),
  document_sha256   text CHECK (document_sha256 = encode(sha256(document), 'hex')),
  document_bytes    integer CHECK (document_bytes = length(document)),
  collected_by      text NOT NULL,
  collected_at      timestamptz NOT NULL,
  verification      text NOT NULL
                    CHECK (verification IN ('none', 'account_pin', 'signed_document', 'logged_in_account',
                                            'agent_verified_id')),
  recorded_by       text NOT NULL,      -- the API token that recorded it
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((document IS NULL) = (media_type IS NULL)
         AND (document IS NULL) = (document_sha256 IS NULL)
         AND (document IS NULL) = (document_bytes IS NULL))
);
SELECT make_evidence_table('consent_documents');
