"""verify: the decision follows the thresholds that compute_metrics stored, with the same scoring as score."""
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from badinput import assert_clean_error, run_entry, tree_digest
from trainer_helpers import make_tiny_corpus
from wesv.models import build_encoder, save_encoder


def _main(module, argv: list) -> None:
    with pytest.raises(SystemExit) as stop:
        module.main([str(a) for a in argv])
    assert stop.value.code == 0


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny model dir evaluated on generated trials: scores (mean-subtracted) and thresholds.json."""
    root = tmp_path_factory.mktemp("verify")
    data = make_tiny_corpus(str(root), num_speakers=3, utts_per_speaker=3, seconds=0.4)
    utts = [line.split()[0] for line in open(os.path.join(data, "wav.scp"))]
    with open(os.path.join(data, "trials"), "w") as f:
        for i, a in enumerate(utts):
            for b in utts[i + 1:]:
                f.write(f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}\n")
    torch.manual_seed(0)
    model = root / "exp"
    save_encoder(str(model / "encoder.pt"), build_encoder("resnet_small", {"base_width": 4, "embed_dim": 16,
                                                                           "fbank": {"num_mel_bins": 24}}))
    from wesv.bin import compute_metrics, extract, merge_embeddings, score

    emb = root / "emb"
    _main(extract, ["--model-dir", str(model), "--data", data, "--out", str(emb)])
    _main(merge_embeddings, ["--out", str(emb), "--num-jobs", "1", "--data", data])
    scores = root / "scores"
    _main(score, ["--trials", os.path.join(data, "trials"), "--enroll-emb", str(emb / "xvector.scp"),
                "--test-emb", str(emb / "xvector.scp"), "--mean-emb", str(emb / "mean.vec"), "--out", str(scores)])
    _main(compute_metrics, ["--trials", os.path.join(data, "trials"), "--scores", str(scores), "--save-thresholds",
                          str(model), "--mean-emb", str(emb / "mean.vec"), "--eval-set", "tiny"])
    wav = {k: v for k, v in (line.split() for line in open(os.path.join(data, "wav.scp")))}
    pairs = root / "pairs"
    lines = [line.split() for line in open(scores)]
    pairs.write_text("".join(f"{wav[a]} {wav[b]}\n" for a, b, _ in lines))
    return model, pairs, [float(s) for _, _, s in lines], root


def _run(capsys, argv):
    out = run_entry("verify", argv, capsys)
    assert out.code == 0, out.err
    return [line.split() for line in out.out.splitlines()]


def test_thresholds_file_holds_the_operating_points_and_the_mean(evaluated):
    from wesv.scoring.metrics import compute_eer, compute_min_dcf
    from wesv.scoring.thresholds import read_thresholds

    model, _, scores, root = evaluated
    rec = read_thresholds(str(model / "thresholds.json"))
    labels = np.array([line.split()[2] == "target" for line in open(root / "train" / "trials")])
    eer, thr = compute_eer(np.array(scores), labels)
    assert rec["eval_set"] == "tiny" and rec["scoring"]["mean_subtraction"] and len(rec["scoring"]["mean"]) == 16
    assert rec["eer"]["threshold"] == pytest.approx(thr) and rec["eer"]["value_percent"] == pytest.approx(100 * eer)
    assert rec["mindcf"]["value"] == pytest.approx(compute_min_dcf(np.array(scores), labels, 0.01))
    # at the stored minDCF threshold the cost is the minimum
    t = rec["mindcf"]["threshold"]
    acc = np.array(scores) >= t
    p_miss, p_fa = (~acc & labels).sum() / labels.sum(), (acc & ~labels).sum() / (~labels).sum()
    assert (0.01 * p_miss + 0.99 * p_fa) / 0.01 == pytest.approx(rec["mindcf"]["value"])


@pytest.mark.parametrize("which", ["eer", "mindcf"])
def test_decisions_follow_the_stored_threshold(evaluated, capsys, which):
    model, pairs, scores, _ = evaluated
    thr = json.load(open(model / "thresholds.json"))[which]["threshold"]
    rows = _run(capsys, ["--model-dir", model, "--pairs", pairs, "--threshold", which])
    assert len(rows) == len(scores)
    if which == "eer":
        assert {r[3] for r in rows} == {"same", "different"}
    for row, ref in zip(rows, scores):
        assert float(row[2]) == pytest.approx(ref, abs=2e-4)  # printed with 4 decimals
        if abs(ref - thr) > 1e-4:
            assert row[3] == ("same" if ref >= thr else "different")


def test_two_files_a_number_and_a_torchscript_export(evaluated, capsys):
    model, pairs, scores, _ = evaluated
    a, b = open(pairs).readline().split()
    (row,) = _run(capsys, ["--model-dir", model, a, b, "--threshold", "-1"])
    assert row[:2] == [a, b] and float(row[2]) == pytest.approx(scores[0], abs=2e-4) and row[3] == "same"
    assert run_entry("export", ["--model-dir", model, "--format", "torchscript"], capsys).code == 0
    ts_rows = _run(capsys, ["--model", model / "encoder.ts", "--pairs", pairs])
    assert [r[3] for r in ts_rows] == [r[3] for r in _run(capsys, ["--model-dir", model, "--pairs", pairs])]
    assert np.allclose([float(r[2]) for r in ts_rows], scores, atol=2e-4)


def test_bad_inputs(evaluated, capsys, tmp_path):
    model, pairs, _, _ = evaluated
    before = tree_digest(str(model))
    a = open(pairs).readline().split()[0]
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, dtype=np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(100, dtype=np.float32), 16000)
    assert_clean_error(run_entry("verify", ["--model-dir", model, a, tmp_path / "missing.wav"], capsys),
                       "missing.wav")
    assert_clean_error(run_entry("verify", ["--model-dir", model, a, empty], capsys), "empty.wav")
    assert_clean_error(run_entry("verify", ["--model-dir", model, a, short], capsys), "short.wav", "100 samples")
    assert_clean_error(run_entry("verify", ["--model-dir", model, a], capsys), "two recordings")
    bad_pairs = tmp_path / "pairs"
    bad_pairs.write_text(f"{a} {a}\n{a}\n")
    assert_clean_error(run_entry("verify", ["--model-dir", model, "--pairs", bad_pairs], capsys), "pairs:2")
    assert_clean_error(run_entry("verify", ["--model-dir", model, a, a, "--threshold", "best"], capsys),
                       "--threshold 'best'")
    assert_clean_error(run_entry("verify", ["--model-dir", tmp_path, a, a], capsys), "thresholds",
                       "--save-thresholds")
    assert tree_digest(str(model)) == before
