"""wesv.methods."""
