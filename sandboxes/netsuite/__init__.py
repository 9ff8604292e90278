"""Local sandbox of the netsuite API (see sandboxes/kit)."""
