"""wesv.data."""
