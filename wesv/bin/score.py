"""Score a trial list with cosine similarity (optionally mean-subtracted and AS-normalised)."""
import argparse

from wesv.cli import entry_point
from wesv.errors import WesvError


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.score``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.score", description=__doc__)
    p.add_argument("--trials", required=True, help="Kaldi trials: 'enroll test target|nontarget'")
    p.add_argument("--enroll-emb", required=True, help="scp of the enrollment embeddings")
    p.add_argument("--test-emb", required=True, help="scp of the test embeddings (may be the same file)")
    p.add_argument("--mean-emb", help="subtract this mean before normalising: an scp (its mean) or a mean.vec")
    p.add_argument("--cohort-emb", help="scp of cohort embeddings (e.g. training set) for AS-norm")
    p.add_argument("--cohort-utt2spk", help="average the cohort per speaker / cluster using this utt2spk")
    p.add_argument("--asnorm-topk", type=int, default=300, help="cohort scores kept per side (default 300)")
    p.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=True,
                   help="adaptive S-norm: top-k closest cohort members (default); --no-adaptive uses the whole cohort")
    p.add_argument("--out", required=True, help="score file to write: 'enroll test score' lines")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args.cohort_utt2spk and not args.cohort_emb:
        raise WesvError("--cohort-utt2spk needs --cohort-emb (the embeddings to average per speaker)")
    if args.asnorm_topk < 1:
        raise WesvError(f"--asnorm-topk must be at least 1, got {args.asnorm_topk}")
    from wesv.scoring.scorer import run_scoring
    run_scoring(args.trials, args.enroll_emb, args.test_emb, args.out, mean_path=args.mean_emb,
                cohort_scp=args.cohort_emb, cohort_utt2spk=args.cohort_utt2spk,
                top_k=args.asnorm_topk if args.adaptive else None)


if __name__ == "__main__":
    main()
