"""wesv.corpus."""
