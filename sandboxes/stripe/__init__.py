"""Local sandbox of the stripe API (see sandboxes/kit)."""
