-- A call's story shows what became of its decisions' events (storage/call_story.py):
-- receipts are looked up by the event's ledger entry.
CREATE INDEX event_deliveries_seq ON event_deliveries (seq);
CREATE INDEX event_applications_seq ON event_applications (seq);
