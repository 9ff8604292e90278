"""Local sandbox of the salesforce API (see sync/connectors/sandbox_kit)."""
