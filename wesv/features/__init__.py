"""wesv.features."""
