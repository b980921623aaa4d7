"""The off-the-shelf reference: resemblyzer's pretrained GE2E speaker encoder (trained with labels on real speech).

    python bench/resemblyzer_reference.py --data CORPUS/test --out ref.score
    python -m wesv.bin.compute_metrics --trials CORPUS/test/trials --scores ref.score --json ref.json \\
        --system "resemblyzer GE2E (pretrained, labels, real speech)"

An optional benchmark dependency, never imported by wesv itself: install it into a separate environment
(``pip install torch==2.13.0 'setuptools<81' webrtcvad-wheels librosa soundfile && pip install --no-deps
resemblyzer``; resemblyzer needs pkg_resources, gone from setuptools 81, and webrtcvad, whose wheels package is
``webrtcvad-wheels``). Its weights ship inside the package: nothing is downloaded. Every utterance of ``--data``
(wav.scp: plain paths) goes through resemblyzer's own preprocessing (volume normalisation, long silences trimmed)
and ``VoiceEncoder.embed_utterance``; the trials are scored with the cosine of the (unit-norm) embeddings, as a user
picking it off the shelf would.
"""
import argparse
import os

import numpy as np
import soundfile as sf


def main() -> None:
    """Embed every utterance of --data, write cosine scores of its trials to --out."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data dir with wav.scp (plain paths) and trials")
    p.add_argument("--out", required=True, help="score file: 'enroll test score' lines")
    args = p.parse_args()
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu")
    emb = {}
    with open(os.path.join(args.data, "wav.scp")) as f:
        for line in f:
            utt, path = line.split(maxsplit=1)
            wav, sr = sf.read(path.strip(), dtype="float32")
            emb[utt] = encoder.embed_utterance(preprocess_wav(wav, source_sr=sr))
    with open(os.path.join(args.data, "trials")) as f, open(args.out, "w") as out:
        for line in f:
            a, b, _ = line.split()
            out.write(f"{a} {b} {float(np.dot(emb[a], emb[b])):.6f}\n")
    print(f"{len(emb)} utterances embedded; scores in {args.out}")


if __name__ == "__main__":
    main()
