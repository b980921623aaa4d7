"""wesv.scoring."""
