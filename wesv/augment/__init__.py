"""wesv.augment."""
