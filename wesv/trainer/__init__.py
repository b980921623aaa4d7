"""wesv.trainer."""
