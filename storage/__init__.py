"""Persistence: the Postgres evidence ledger and the Redis call sessions (no HTTP here)."""
