"""wesv.cluster."""
