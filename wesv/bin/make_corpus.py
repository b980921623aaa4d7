"""Generate the embedded procedural speech corpus (train/test data dirs, trials, MUSAN/RIR-style sets).

With --only-augment-sets: just DIR/noise and DIR/rirs, the MUSAN / RIRS_NOISES stand-ins, for a recipe on a corpus
of one's own without those downloads (point augment.noise_dir and augment.rir_dir at them).
"""
import argparse

from wesv.cli import entry_point
from wesv.corpus import ChannelConfig, CorpusConfig, make_augment_sets, make_corpus
from wesv.corpus.faces import FaceConfig


def _snr_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    try:
        return float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in dB (e.g. 5,30), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m wesv.bin.make_corpus`` (defaults: wesv.corpus.CorpusConfig)."""
    d, ch = CorpusConfig(), ChannelConfig()
    p = argparse.ArgumentParser(prog="python -m wesv.bin.make_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (created; existing files are overwritten)")
    p.add_argument("--seed", type=int, default=0,
                   help="corpus seed: the same options and seed give byte-identical audio (default: %(default)s)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--no-augment-sets", action="store_true", help="skip DIR/noise and DIR/rirs")
    what.add_argument("--only-augment-sets", action="store_true",
                      help="write only DIR/noise (MUSAN-like) and DIR/rirs (RIRS_NOISES-like), no speakers; sized by "
                           "--num-noise, --num-music, --num-speech, --rooms-per-class, --rirs-per-room")
    g = p.add_argument_group("speakers and utterances")
    g.add_argument("--num-train-speakers", type=int, default=d.num_train_speakers,
                   help="speakers of DIR/train (default: %(default)s)")
    g.add_argument("--utts-per-speaker", type=int, default=d.utts_per_speaker,
                   help="utterances per train speaker (default: %(default)s)")
    g.add_argument("--num-test-speakers", type=int, default=d.num_test_speakers,
                   help="speakers of DIR/test, disjoint from the train speakers (default: %(default)s)")
    g.add_argument("--test-utts-per-speaker", type=int, default=d.test_utts_per_speaker,
                   help="utterances per test speaker, at least 2 for target trials (default: %(default)s)")
    g.add_argument("--min-dur", type=float, default=d.min_dur,
                   help="shortest utterance in seconds (default: %(default)s)")
    g.add_argument("--max-dur", type=float, default=d.max_dur,
                   help="longest utterance in seconds (default: %(default)s)")
    g.add_argument("--num-trials", type=int, default=d.num_trials,
                   help="upper bound on the number of test trials (default: %(default)s)")
    g.add_argument("--target-fraction", type=float, default=d.target_fraction,
                   help="fraction of target (same-speaker) trials, kept exactly (default: %(default)s)")
    g.add_argument("--trait-spread", type=float, default=d.trait_spread,
                   help="scale of the between-speaker trait spread; smaller is harder (default: %(default)s)")
    g.add_argument("--within-var", type=float, default=d.within_var,
                   help="scale of the within-speaker variation (mood, tempo, effort) (default: %(default)s)")
    g.add_argument("--twin-fraction", type=float, default=d.twin_fraction,
                   help="fraction of speakers that are near-twins of another of their split (default: %(default)s)")
    g = p.add_argument_group("recording sessions (one per utterance)")
    g.add_argument("--no-channel", action="store_true", help="no channel, noise or reverb (calibration)")
    g.add_argument("--eq-db", type=float, default=ch.eq_db,
                   help="std of the random session EQ bumps in dB (default: %(default)s)")
    g.add_argument("--snr", type=_snr_range, default=ch.snr_db, metavar="LOW,HIGH",
                   help="session SNR range in dB (default: %g,%g)" % ch.snr_db)
    g.add_argument("--reverb-prob", type=float, default=ch.reverb_prob,
                   help="probability that a session is reverberant (default: %(default)s)")
    g = p.add_argument_group("augmentation sets (DIR/noise, DIR/rirs)")
    g.add_argument("--num-noise", type=int, default=d.num_noise,
                   help="noise clips (MUSAN noise/) (default: %(default)s)")
    g.add_argument("--num-music", type=int, default=d.num_music,
                   help="music clips (MUSAN music/) (default: %(default)s)")
    g.add_argument("--num-speech", type=int, default=d.num_speech,
                   help="single-talker clips, the babble sources (MUSAN speech/) (default: %(default)s)")
    g.add_argument("--rooms-per-class", type=int, default=d.rooms_per_class,
                   help="simulated rooms per size class (small, medium, large) (default: %(default)s)")
    g.add_argument("--rirs-per-room", type=int, default=d.rirs_per_room,
                   help="RIRs (source/microphone positions) per room (default: %(default)s)")
    g = p.add_argument_group("visual stream (DIR/train/face.scp, DIR/test/face.scp)")
    fc = d.face_cfg
    g.add_argument("--no-faces", action="store_true", help="write no face stream (the audio is the same either way)")
    g.add_argument("--face-dim", type=int, default=fc.dim, help="face embedding dimension (default: %(default)s)")
    g.add_argument("--face-frame-rate", type=float, default=fc.frame_rate,
                   help="face frames per second of audio (default: %(default)s)")
    p.add_argument("--num-workers", type=int, default=d.num_workers,
                   help="rendering processes; the output does not depend on it (default: %(default)s)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Parse options and build the corpus (or only its augmentation sets)."""
    a = build_parser().parse_args(argv)
    if a.only_augment_sets:
        make_augment_sets(a.out, a.seed, num_noise=a.num_noise, num_music=a.num_music, num_speech=a.num_speech,
                          rooms_per_class=a.rooms_per_class, rirs_per_room=a.rirs_per_room)
        return
    channel_cfg = ChannelConfig(eq_db=a.eq_db, snr_db=a.snr, reverb_prob=a.reverb_prob)
    make_corpus(
        a.out, a.seed, num_train_speakers=a.num_train_speakers, utts_per_speaker=a.utts_per_speaker,
        num_test_speakers=a.num_test_speakers, test_utts_per_speaker=a.test_utts_per_speaker, min_dur=a.min_dur,
        max_dur=a.max_dur, num_trials=a.num_trials, target_fraction=a.target_fraction, trait_spread=a.trait_spread,
        within_var=a.within_var, twin_fraction=a.twin_fraction, channel=not a.no_channel, channel_cfg=channel_cfg,
        augment_sets=not a.no_augment_sets, num_noise=a.num_noise, num_music=a.num_music, num_speech=a.num_speech,
        rooms_per_class=a.rooms_per_class, rirs_per_room=a.rirs_per_room, num_workers=a.num_workers,
        faces=not a.no_faces, face_cfg=FaceConfig(dim=a.face_dim, frame_rate=a.face_frame_rate),
    )


if __name__ == "__main__":
    main()
