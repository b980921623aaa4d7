"""wesv.cluster: embeddings -> pseudo-speaker clusters (k-means + average-linkage AHC), cleaning, purity."""
