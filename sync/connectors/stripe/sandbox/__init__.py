"""Local sandbox of the stripe API (see sync/connectors/sandbox_kit)."""
