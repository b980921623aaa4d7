"""Kaldi data dirs from VoxCeleb: VoxCeleb1 test set with trials O/E/H, or VoxCeleb2-dev as training data.

  python -m wesv.bin.prepare_voxceleb --vox1-dir /data/voxceleb1 --out data/vox1
      wav.scp, utt2spk, spk2utt from <vox1-dir>/wav/<spk>/<video>/<n>.wav, and Kaldi trials from the cleaned lists
      found in --lists-dir (default: the VoxCeleb1 dir): veri_test2.txt -> trials_O, list_test_all2.txt -> trials_E,
      list_test_hard2.txt -> trials_H; `trials` links to trials_O. A missing list is skipped with a warning.
  python -m wesv.bin.prepare_voxceleb --vox2-dir /data/voxceleb2 --out data/vox2_dev
      wav.scp (m4a through an ffmpeg pipe, 16 kHz mono), utt2spk, spk2utt from <vox2-dir>/dev/aac/<spk>/<video>/<n>.m4a
      (<vox2-dir> may also be the dev dir itself). utt2spk holds the true speakers: only supervised training and
      purity/NMI measurement use it; the self-supervised methods never read it.
Utterance ids are <spk>-<video>-<n>. The result is validated before the command returns.
"""
import argparse
import os

from wesv.cli import entry_point
from wesv.errors import WesvError
from wesv.log import get_logger

logger = get_logger("wesv.bin.prepare_voxceleb")

# Cleaned VoxCeleb1 lists -> trial file names.
VOX1_LISTS = {"O": "veri_test2.txt", "E": "list_test_all2.txt", "H": "list_test_hard2.txt"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.prepare_voxceleb``."""
    p = argparse.ArgumentParser(prog="python -m wesv.bin.prepare_voxceleb", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--vox1-dir", help="VoxCeleb1 root holding wav/ (the test set, for evaluation)")
    src.add_argument("--vox2-dir", help="VoxCeleb2 root holding dev/aac/ (or the dev dir itself)")
    p.add_argument("--out", required=True, help="data dir to write, e.g. data/vox1 or data/vox2_dev")
    p.add_argument("--lists-dir", help="where the VoxCeleb1 lists are (default: --vox1-dir)")
    p.add_argument("--sample-rate", type=int, default=16000,
                   help="rate the ffmpeg pipes decode VoxCeleb2 to, in Hz (default: %(default)s)")
    return p


def prepare_vox1(vox1_dir: str, out: str, lists_dir: str | None = None) -> list[str]:
    """Write the VoxCeleb1 data dir and trials_O/E/H for the lists present; return the trial names written."""
    from wesv.data.voxceleb import make_voxceleb1_data_dir, voxceleb_list_to_trials

    make_voxceleb1_data_dir(vox1_dir, out)
    lists_dir = lists_dir or vox1_dir
    wav_dir = os.path.join(vox1_dir, "wav") if os.path.isdir(os.path.join(vox1_dir, "wav")) else vox1_dir
    written = []
    for name, list_file in VOX1_LISTS.items():
        path = os.path.join(lists_dir, list_file)
        if not os.path.isfile(path):
            logger.warning("%s: not found; no trials_%s (Vox1-%s) — download it from the VoxCeleb site", path, name,
                           name)
            continue
        voxceleb_list_to_trials(path, os.path.join(out, f"trials_{name}"), audio_root=wav_dir, data_dir=out)
        written.append(f"trials_{name}")
    link = os.path.join(out, "trials")
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    if "trials_O" in written:
        os.symlink("trials_O", link)  # the default list of the data dir (DataDir.trials)
    return written


def prepare_vox2(vox2_dir: str, out: str, sample_rate: int = 16000) -> None:
    """Write the VoxCeleb2 data dir (``<root>/dev/aac`` or the ``dev`` dir itself)."""
    from wesv.data.voxceleb import make_voxceleb2_data_dir

    vox2_dir = os.path.normpath(vox2_dir)
    if any(os.path.isdir(os.path.join(vox2_dir, d)) for d in ("aac", "wav")):
        root, subset = os.path.dirname(vox2_dir), os.path.basename(vox2_dir)
    else:
        root, subset = vox2_dir, "dev"
    make_voxceleb2_data_dir(root, out, subset=subset, sample_rate=sample_rate)


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = build_parser().parse_args(argv)
    from wesv.data.validate import validate_data_dir

    src = args.vox1_dir or args.vox2_dir
    if not os.path.isdir(src):
        raise WesvError(f"{src}: no such directory — give the {'VoxCeleb1' if args.vox1_dir else 'VoxCeleb2'} "
                        "download (see the usage in python -m wesv.bin.prepare_voxceleb --help)")
    if args.lists_dir and not os.path.isdir(args.lists_dir):
        raise WesvError(f"--lists-dir {args.lists_dir}: no such directory")
    if args.vox1_dir:
        written = prepare_vox1(args.vox1_dir, args.out, args.lists_dir)
    else:
        prepare_vox2(args.vox2_dir, args.out, args.sample_rate)
        logger.info("%s/utt2spk holds the true speakers: used only by supervised training and purity "
                    "measurement, never by the self-supervised methods", args.out)
        written = []
    summary = validate_data_dir(args.out)
    print(f"{summary}" + (f"; {', '.join(written)}" if written else ""), flush=True)


if __name__ == "__main__":
    main()
