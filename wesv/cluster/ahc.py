"""Average-linkage agglomerative clustering on cosine similarity: exact scipy for small sets, and a
memory-light, size-weighted version for k-means centroids.

Why average linkage on weighted means: for unit-norm embeddings the mean cosine similarity between every pair of
utterances of clusters A and B equals ``mean_A . mean_B`` (the dot product of the raw, unnormalised means). So
merging k-means atoms by the dot product of their size-weighted means *is* utterance-level average linkage (UPGMA)
restricted to the atoms, without ever forming an atoms x atoms matrix (50 k x 50 k float32 would be 10 GB).
Average linkage is "reducible", so merging every pair of reciprocal nearest neighbours at once yields the same
hierarchy as merging one pair at a time; each round is one exact search over the active clusters (faiss, or a
chunked torch matmul on a GPU without faiss-gpu; memory O(n d), time O(n^2 d) in the first round, shrinking with
the active set).
Ward linkage would optimise within-cluster variance, which on the sphere ranks merges almost alike but lets large
clusters absorb small ones; average linkage is what speaker clustering (and the scoring threshold) is used to.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import connected_components

from wesv.cluster.kmeans import Backend
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.cluster")

# scipy needs the condensed distance matrix: n (n - 1) / 2 float64 — 20 k rows is 1.6 GB.
SCIPY_MAX_POINTS = 20000


def cosine_ahc(x: np.ndarray, num_clusters: int | None = None, threshold: float | None = None) -> np.ndarray:
    """Average-linkage AHC of rows on cosine distance (scipy): cut at ``num_clusters`` or at ``threshold``."""
    if (num_clusters is None) == (threshold is None):
        raise WesvError("--algorithm ahc: give exactly one of --num-clusters and --threshold")
    n = len(x)
    if n > SCIPY_MAX_POINTS:
        raise WesvError(f"--algorithm ahc on {n} embeddings needs an {n}x{n} distance matrix — use --algorithm kmeans_ahc "
                        f"for more than {SCIPY_MAX_POINTS}")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(np.asarray(x, dtype=np.float64), method="average", metric="cosine")
    if num_clusters is not None:
        labels = fcluster(tree, t=num_clusters, criterion="maxclust")
    else:
        labels = fcluster(tree, t=threshold, criterion="distance")
    return labels.astype(np.int64) - 1


def _nearest(means: np.ndarray, backend: Backend) -> tuple[np.ndarray, np.ndarray]:
    """For each row: its most similar other row (exact inner product) and that similarity."""
    if backend.name == "torch":
        import torch

        from wesv.cluster.torch_kmeans import nearest_other
        nbr, sim = nearest_other(torch.from_numpy(means).to(backend.device))
        return nbr.cpu().numpy(), sim.cpu().numpy()
    import faiss
    n, d = means.shape
    index = faiss.IndexFlatIP(d)
    if backend.device == "cuda":
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(means)
    sim, nbr = index.search(means, 2)
    # A row need not be its own best match (dot products of unnormalised means), so drop self wherever it is.
    sim = np.where(nbr == np.arange(n)[:, None], -np.inf, sim)
    best = np.argmax(sim, axis=1)
    rows = np.arange(n)
    return nbr[rows, best].astype(np.int64), sim[rows, best]


def weighted_average_linkage(means: np.ndarray, sizes: np.ndarray, *, num_clusters: int | None = None,
                             min_similarity: float | None = None, backend: Backend | None = None) -> np.ndarray:
    """Merge weighted cluster means (average linkage, dot-product similarity) down to ``num_clusters`` or until no
    pair is more similar than ``min_similarity``; returns the final cluster index (0..K-1) of each input row.

    Rounds of reciprocal nearest neighbours build the dendrogram bottom-up, recording each merge's similarity. A
    round may merge a distant pair before a close one elsewhere, so the rounds go on until no pair left can beat
    the ``n - K``-th best merge recorded (later merges are never more similar than the best current pair), and the
    cut keeps the ``n - K`` most similar merges: the same clusters as merging one best pair at a time.
    ``backend`` (default faiss on the CPU) runs the nearest-neighbour searches.
    """
    backend = backend or Backend("faiss", "cpu")
    if num_clusters is None and min_similarity is None:
        raise WesvError("agglomerative clustering needs --num-clusters or --threshold")
    n = len(means)
    need = n - max(1, num_clusters) if num_clusters is not None else n
    floor = -np.inf if min_similarity is None else float(min_similarity)
    m = np.ascontiguousarray(means, dtype=np.float32).copy()
    w = np.asarray(sizes, dtype=np.float64).copy()
    rep = np.arange(n, dtype=np.int64)  # one original row standing for each active cluster
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    sims: list[np.ndarray] = []
    recorded = rounds = 0
    while len(m) > 1 and need > 0:
        nn, s1 = _nearest(m, backend)
        if recorded >= need:
            kth = np.partition(np.concatenate(sims), recorded - need)[recorded - need]
            if s1.max() <= kth:
                break
        idx = np.arange(len(m))
        pair = (nn[nn] == idx) & (idx < nn) & (s1 >= floor)
        a, b = idx[pair], nn[pair]
        if len(a) == 0:
            break
        rounds += 1
        src.append(rep[a])
        dst.append(rep[b])
        sims.append(s1[pair])
        recorded += len(a)
        wa, wb = w[a][:, None], w[b][:, None]
        m[a] = ((wa * m[a] + wb * m[b]) / (wa + wb)).astype(np.float32)
        w[a] += w[b]
        keep = np.ones(len(m), dtype=bool)
        keep[b] = False
        m, w, rep = np.ascontiguousarray(m[keep]), w[keep], rep[keep]
    if recorded == 0:
        return np.arange(n, dtype=np.int64)
    src_all, dst_all, sim_all = np.concatenate(src), np.concatenate(dst), np.concatenate(sims)
    chosen = np.argsort(-sim_all, kind="stable")[:need]
    # Merges form a forest over the rows, so every chosen merge removes exactly one component.
    graph = sp.coo_matrix((np.ones(len(chosen)), (src_all[chosen], dst_all[chosen])), shape=(n, n))
    num, labels = connected_components(graph, directed=False)
    logger.info("average linkage: %d -> %d clusters (%d rounds)", n, num, rounds)
    return labels.astype(np.int64)
