"""Pure voice-flow domain: definitions as data and the engine that walks them (no I/O)."""
