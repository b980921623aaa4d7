"""Decide whether recordings share a speaker: prints 'a b score same|different' per pair."""
import argparse
import os

from wesv.cli import entry_point
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.bin.verify")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.verify``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.verify", description=__doc__)
    p.add_argument("audio", nargs="*", help="two recordings (files, or wav.scp values such as 'cmd |')")
    p.add_argument("--pairs", help="file of 'a.wav b.wav' lines to verify instead")
    p.add_argument("--model-dir", help="experiment dir holding encoder.pt and thresholds.json")
    p.add_argument("--model", help="model file: encoder.pt, or a TorchScript / ONNX export (default "
                                   "MODEL_DIR/encoder.pt)")
    p.add_argument("--thresholds", help="thresholds.json (default: beside the model, then in MODEL_DIR)")
    p.add_argument("--threshold", default="eer",
                   help="eer (equal error rate point, default), mindcf (minDCF@0.01 point) or a score")
    return p


def _thresholds_path(args: argparse.Namespace, model: str) -> str:
    if args.thresholds:
        return args.thresholds
    from wesv.scoring.thresholds import FILENAME

    beside = os.path.join(os.path.dirname(os.path.abspath(model)), FILENAME)
    if os.path.isfile(beside) or not args.model_dir:
        return beside
    return os.path.join(args.model_dir, FILENAME)


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if bool(args.pairs) == bool(args.audio) or (args.audio and len(args.audio) != 2):
        raise WesvError("give two recordings (a.wav b.wav) or --pairs FILE, not both")
    model = args.model or (os.path.join(args.model_dir, "encoder.pt") if args.model_dir else None)
    if model is None:
        raise WesvError("give --model-dir (holding encoder.pt) or --model FILE")
    from wesv.deploy.verify import load_embedder, read_pairs, verify_pairs
    from wesv.scoring.thresholds import pick_threshold, read_thresholds, record_mean

    try:
        number = float(args.threshold)
    except ValueError:
        number = None
    tpath = _thresholds_path(args, model)
    if number is not None and not os.path.isfile(tpath):
        rec, threshold = None, number
        log.info("no %s: plain cosine scores (no mean subtraction) against %g", tpath, number)
    else:
        rec = read_thresholds(tpath)
        threshold = number if number is not None else pick_threshold(rec, args.threshold)
        log.info("threshold %.4f (%s of %s, %s scoring%s)", threshold, args.threshold, rec.get("eval_set"),
                 rec["scoring"]["method"], " with mean subtraction" if rec["scoring"]["mean_subtraction"] else "")
    pairs = [(a, b) for a, b, _ in read_pairs(args.pairs)] if args.pairs else [tuple(args.audio)]
    embedder = load_embedder(model)
    for a, b, score, same in verify_pairs(embedder, pairs, threshold, record_mean(rec) if rec else None):
        print(f"{a} {b} {score:.4f} {'same' if same else 'different'}", flush=True)


if __name__ == "__main__":
    main()
