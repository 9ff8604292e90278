"""Local sandbox of the salesforce API (see sandboxes/kit)."""
