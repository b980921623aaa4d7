"""wesv.config."""
