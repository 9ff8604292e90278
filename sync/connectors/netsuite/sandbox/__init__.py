"""Local sandbox of the netsuite API (see sync/connectors/sandbox_kit)."""
