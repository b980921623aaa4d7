"""Cluster embeddings into pseudo-speakers and write a data dir whose utt2spk holds cluster ids."""
from __future__ import annotations

import argparse

from wesv.cli import entry_point
from wesv.cluster.kmeans import ASSIGN_DTYPES, BACKENDS, KMEANS_INDEXES
from wesv.cluster.pipeline import ALGORITHMS, ClusterConfig, run_clustering
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.bin.cluster")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.cluster``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.cluster", description=__doc__)
    p.add_argument("--emb", required=True, action="append",
                   help="embedding scp of the utterances of --data (xvector.scp); repeat it or give A.scp,B.scp to "
                        "cluster fused branches (concatenated L2-normalised embeddings, zeros where a branch lacks "
                        "an utterance; each utterance in at least one scp; one scp must hold them all)")
    p.add_argument("--emb-weights", default=None,
                   help="comma-separated weight per --emb scp, in order, multiplying its normalised block "
                        "(default: all 1)")
    p.add_argument("--data", required=True, help="source data dir (only its wav.scp is read)")
    p.add_argument("--out", required=True, help="new data dir for the pseudo-labels (e.g. data/train_round1)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="kmeans_ahc",
                   help="kmeans_ahc: k-means to --num-kmeans clusters, then average-linkage AHC of the centroids; "
                        "ahc: exact AHC of all points (small sets); kmeans: spherical k-means alone "
                        "(default: %(default)s)")
    p.add_argument("--method", dest="method_alias", choices=ALGORITHMS, default=None,
                   help="deprecated alias of --algorithm")
    p.add_argument("--num-clusters", type=int, default=None,
                   help="target number of pseudo-speakers K (set it near the number of speakers expected; "
                        "ahc and kmeans_ahc may use --threshold instead)")
    p.add_argument("--num-kmeans", type=int, default=None,
                   help="k-means clusters before agglomeration (kmeans_ahc; default 4 x K)")
    p.add_argument("--threshold", type=float, default=None,
                   help="stop merging at this average cosine distance (ahc, kmeans_ahc; default: merge down to "
                        "--num-clusters)")
    p.add_argument("--min-cluster-size", type=int, default=1,
                   help="drop clusters with fewer kept utterances than this (default: %(default)s, keep all)")
    p.add_argument("--keep-fraction", type=float, default=1.0,
                   help="keep this fraction of utterances, those closest to their cluster centroid "
                        "(default: %(default)s, keep all)")
    p.add_argument("--kmeans-iters", type=int, default=20, help="k-means iterations (default: %(default)s)")
    p.add_argument("--kmeans-backend", choices=BACKENDS, default="auto",
                   help="faiss, or torch (GPU without faiss-gpu); auto picks (default: %(default)s)")
    p.add_argument("--kmeans-index", choices=KMEANS_INDEXES, default="auto",
                   help="faiss CPU assignment while training: exact flat or approximate HNSW (default: "
                        "%(default)s, HNSW from 20 k clusters)")
    p.add_argument("--kmeans-max-points-per-centroid", type=int, default=None,
                   help="train k-means on a subsample of this many points per cluster (default: all points)")
    p.add_argument("--kmeans-assign-dtype", choices=ASSIGN_DTYPES, default="float32",
                   help="torch backend: matmul type of the assignment (bfloat16 is faster on a GPU; default: "
                        "%(default)s)")
    p.add_argument("--subtract-mean", default=None, metavar="MEAN_OR_auto",
                   help="subtract a mean before L2 normalisation, as scoring does: 'auto' (the mean of the embeddings "
                        "being clustered), a mean.vec, or an scp (its mean) (default: none, normalise only)")
    p.add_argument("--truth-utt2spk", default=None,
                   help="true utt2spk, read only to measure NMI/AMI/ARI/purity into cluster_report.json "
                        "(default: none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the k-means initialisation and subsampling (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the torch backend and AHC run; auto: the GPU if there is one (default: %(default)s)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    """Parse options and run one clustering round."""
    args = build_parser().parse_args(argv)
    if args.method_alias is not None:
        log.warning("--method is deprecated (a method is a training method): use --algorithm %s", args.method_alias)
        args.algorithm = args.method_alias
    cfg = ClusterConfig(algorithm=args.algorithm, num_clusters=args.num_clusters, num_kmeans=args.num_kmeans,
                        threshold=args.threshold, min_cluster_size=args.min_cluster_size,
                        keep_fraction=args.keep_fraction, kmeans_iters=args.kmeans_iters, seed=args.seed,
                        device=args.device, kmeans_backend=args.kmeans_backend, kmeans_index=args.kmeans_index,
                        kmeans_max_points_per_centroid=args.kmeans_max_points_per_centroid,
                        kmeans_assign_dtype=args.kmeans_assign_dtype, subtract_mean=args.subtract_mean)
    scps = [s for value in args.emb for s in value.split(",") if s]
    weights = None
    if args.emb_weights is not None:
        try:
            weights = [float(w) for w in args.emb_weights.split(",")]
        except ValueError:
            raise WesvError(f"--emb-weights {args.emb_weights!r}: give comma-separated numbers, e.g. 1,0.5") from None
    run_clustering(scps, args.data, args.out, cfg, truth_utt2spk=args.truth_utt2spk, emb_weights=weights)
    return 0


if __name__ == "__main__":
    main()
