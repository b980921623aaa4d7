"""Generate the embedded procedural speech corpus (train/test data dirs, trials, MUSAN/RIR-style sets)."""
import argparse

from wesv.cli import entry_point
from wesv.corpus import ChannelConfig, CorpusConfig, make_corpus


def _snr_range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    try:
        return float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in dB (e.g. 5,30), got {text!r}") from None


@entry_point
def main(argv: list[str] | None = None) -> None:
    """Parse options and build the corpus."""
    d, ch = CorpusConfig(), ChannelConfig()
    p = argparse.ArgumentParser(prog="python -m wesv.bin.make_corpus", description=__doc__)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train-speakers", type=int, default=d.num_train_speakers)
    p.add_argument("--utts-per-speaker", type=int, default=d.utts_per_speaker)
    p.add_argument("--num-test-speakers", type=int, default=d.num_test_speakers)
    p.add_argument("--test-utts-per-speaker", type=int, default=d.test_utts_per_speaker)
    p.add_argument("--min-dur", type=float, default=d.min_dur, help="seconds")
    p.add_argument("--max-dur", type=float, default=d.max_dur, help="seconds")
    p.add_argument("--num-trials", type=int, default=d.num_trials, help="upper bound on the number of trials")
    p.add_argument("--target-fraction", type=float, default=d.target_fraction)
    p.add_argument("--trait-spread", type=float, default=d.trait_spread, help="between-speaker trait spread scale")
    p.add_argument("--within-var", type=float, default=d.within_var, help="within-speaker variation scale")
    p.add_argument("--twin-fraction", type=float, default=d.twin_fraction)
    p.add_argument("--no-channel", action="store_true", help="no channel, noise or reverb (calibration)")
    p.add_argument("--eq-db", type=float, default=ch.eq_db, help="std of the random session EQ bumps (dB)")
    p.add_argument("--snr", type=_snr_range, default=ch.snr_db, help="session SNR range LOW,HIGH in dB")
    p.add_argument("--reverb-prob", type=float, default=ch.reverb_prob)
    p.add_argument("--no-augment-sets", action="store_true", help="skip DIR/noise and DIR/rirs")
    p.add_argument("--num-noise", type=int, default=d.num_noise)
    p.add_argument("--num-music", type=int, default=d.num_music)
    p.add_argument("--num-speech", type=int, default=d.num_speech, help="single-talker clips (babble sources)")
    p.add_argument("--rooms-per-class", type=int, default=d.rooms_per_class)
    p.add_argument("--rirs-per-room", type=int, default=d.rirs_per_room)
    p.add_argument("--num-workers", type=int, default=d.num_workers, help="processes (output does not depend on it)")
    a = p.parse_args(argv)
    channel_cfg = ChannelConfig(eq_db=a.eq_db, snr_db=a.snr, reverb_prob=a.reverb_prob)
    make_corpus(
        a.out, a.seed, num_train_speakers=a.num_train_speakers, utts_per_speaker=a.utts_per_speaker,
        num_test_speakers=a.num_test_speakers, test_utts_per_speaker=a.test_utts_per_speaker, min_dur=a.min_dur,
        max_dur=a.max_dur, num_trials=a.num_trials, target_fraction=a.target_fraction, trait_spread=a.trait_spread,
        within_var=a.within_var, twin_fraction=a.twin_fraction, channel=not a.no_channel, channel_cfg=channel_cfg,
        augment_sets=not a.no_augment_sets, num_noise=a.num_noise, num_music=a.num_music, num_speech=a.num_speech,
        rooms_per_class=a.rooms_per_class, rirs_per_room=a.rirs_per_room, num_workers=a.num_workers,
    )


if __name__ == "__main__":
    main()
