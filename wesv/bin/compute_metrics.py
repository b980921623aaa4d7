"""EER and minDCF (p_target 0.01, 0.05) of a score file against its trials; optional DET PNG and JSON."""
import argparse

from wesv.cli import entry_point
from wesv.errors import WesvError


def parse_extra(items: list[str]) -> dict:
    """``key=value`` pairs → dict; values that parse as numbers become numbers."""
    extra: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WesvError(f"--extra {item!r}: expected key=value, e.g. --extra 'wall time (s)=812'")
        parsed: object = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                pass
        extra[key.strip()] = parsed
    return extra


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.compute_metrics``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.compute_metrics", description=__doc__)
    p.add_argument("--trials", required=True, help="Kaldi trials: 'enroll test target|nontarget'")
    p.add_argument("--scores", required=True, help="'enroll test score' lines, any order")
    p.add_argument("--det-png", help="write the DET curve here")
    p.add_argument("--json", help="write the metrics, counts and paths here as JSON")
    p.add_argument("--system", help="system name for the JSON / results table (default: the scores' directory)")
    p.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra field for the JSON and the results table (repeatable), e.g. 'NMI=0.95'")
    p.add_argument("--save-thresholds", metavar="MODEL_DIR",
                   help="write MODEL_DIR/thresholds.json (EER and minDCF@0.01 thresholds) for wesv.bin.verify; "
                        "the scores must be cosine scores of that model (not AS-norm)")
    p.add_argument("--mean-emb", help="with --save-thresholds: the --mean-emb the scores were computed with "
                                      "(stored so verify subtracts the same mean)")
    p.add_argument("--eval-set", help="with --save-thresholds: the evaluation set's name (default: the trials' dir)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    extra = parse_extra(args.extra)
    if (args.mean_emb or args.eval_set) and not args.save_thresholds:
        raise WesvError("--mean-emb and --eval-set go with --save-thresholds MODEL_DIR")
    from wesv.scoring.evaluate import evaluate, format_result, write_json
    result = evaluate(args.trials, args.scores, system=args.system, extra=extra, det_png=args.det_png)
    print(format_result(result), flush=True)
    if args.json:
        write_json(args.json, result)
    if args.save_thresholds:
        from wesv.scoring.evaluate import save_thresholds
        save_thresholds(args.save_thresholds, args.trials, args.scores, mean_path=args.mean_emb,
                        eval_set=args.eval_set)


if __name__ == "__main__":
    main()
