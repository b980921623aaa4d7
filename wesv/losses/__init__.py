"""wesv.losses."""
