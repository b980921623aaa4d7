"""Face stream of the embedded corpus: regenerate it from a corpus's meta.json, time it, check its bytes, EER.

    python bench/corpus_faces.py --corpus DIR       # DIR made by python -m wesv.bin.make_corpus (faces on)

Prints the generation time of the face stream alone (arks + scps + stream_info.json), whether the regenerated arks
equal DIR's byte for byte, its size on disk, and the EER of cosine scoring on each utterance's mean face frame.
"""
import argparse
import filecmp
import json
import os
import shutil
import tempfile
import time

from wesv.corpus.faces import FaceConfig, face_baseline_eer, write_faces


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    a = p.parse_args()
    meta = json.load(open(os.path.join(a.corpus, "meta.json")))
    cfg = FaceConfig(**meta["config"]["face_cfg"])
    rows = [(u["split"], utt, int(u["spk"][3:]) - 1, int(utt.rsplit("utt", 1)[1]) - 1, u["num_samples"])
            for utt, u in meta["utterances"].items()]
    with tempfile.TemporaryDirectory() as tmp:
        for split in ("train", "test"):
            os.makedirs(os.path.join(tmp, split))
        shutil.copy(os.path.join(a.corpus, "test", "trials"), os.path.join(tmp, "test", "trials"))
        t0 = time.perf_counter()
        write_faces(tmp, meta["seed"], rows, meta["sample_rate"], cfg)
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        eer = face_baseline_eer(os.path.join(tmp, "test"))
        score = time.perf_counter() - t0
        same = all(filecmp.cmp(os.path.join(tmp, "face", f"{s}.ark"), os.path.join(a.corpus, "face", f"{s}.ark"),
                               shallow=False) for s in ("train", "test"))
        size = sum(os.path.getsize(os.path.join(tmp, "face", f)) for f in os.listdir(os.path.join(tmp, "face")))
    print(f"faces: {len(rows)} utterances, dim {cfg.dim}, {cfg.frame_rate:g} fps; generation {gen:.2f} s, "
          f"mean-frame cosine EER {100 * eer:.2f} % (scoring {score:.2f} s); arks {size / 1e6:.2f} MB; "
          f"byte-identical to {a.corpus}: {same}; meta.json says {100 * meta['faces']['mean_frame_cosine_eer']:.2f} %")


if __name__ == "__main__":
    main()
