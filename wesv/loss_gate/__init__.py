"""The dynamic loss-gate and label correction of DLG-LC: the GMM threshold, per-epoch records, plots, precision."""
