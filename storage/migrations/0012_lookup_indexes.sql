-- Indexes for one person's consents (GET /api/subjects/{phone}/consents) at scale.
--
-- An account's phones are looked up by account number whenever an opt-out purpose has no
-- decision (storage/state.py): customer_phones' primary key leads with the phone, so
-- without this every such lookup scanned the whole customer directory.
CREATE INDEX customer_phones_account ON customer_phones (account_number);
