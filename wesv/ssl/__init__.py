"""wesv.ssl."""
