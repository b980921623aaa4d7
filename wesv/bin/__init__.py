"""wesv.bin."""
