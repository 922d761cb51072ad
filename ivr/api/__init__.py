"""The JSON APIs under /api/ (bearer tokens; every handler declares its roles)."""
