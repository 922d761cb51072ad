"""The consent IVR web service: Twilio webhooks, APIs, pages and the ``ivr`` command."""
