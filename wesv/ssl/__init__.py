"""Self-supervised pretraining: the multi-view dataset and the DINO and MoCo methods (registered on import)."""
