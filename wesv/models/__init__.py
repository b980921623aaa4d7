"""wesv.models."""
