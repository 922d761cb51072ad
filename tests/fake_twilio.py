"""The tests' Twilio: the simulator that ``ivr simulate`` uses, signing with the test token."""

from ivr.cli.simulator import ACCOUNT_SID, FakeCall, FakeTwilio, Twiml, new_call_sid, new_caller

__all__ = ["ACCOUNT_SID", "FakeCall", "FakeTwilio", "Twiml", "new_call_sid", "new_caller"]
