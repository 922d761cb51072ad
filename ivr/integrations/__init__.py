"""Telling other systems what was decided: subscriptions, signed deliveries, their receipts.

Shared by the JSON door (admins' subscription routes, receivers' ``applied`` call) and the
CLI (``ivr subscriptions``); the delivery worker runs in every ``ivr serve`` process.
"""
