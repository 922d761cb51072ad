"""Flow definitions shipped with the service, one TOML file per flow."""
