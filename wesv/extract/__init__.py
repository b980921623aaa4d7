"""wesv.extract."""
