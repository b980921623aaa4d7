"""DLG-LC: margin at the corrected label, no gradient from gated-out samples, BN untouched by the clean pass,
τ fitted from the gathered table with fallbacks, per-epoch records, a short training run and the offline report."""
import logging
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_dino import TinyEncoder

from wesv.config import load_config
from wesv.loss_gate.record import read_records
from wesv.loss_gate.report import epoch_precision, majority_speakers
from wesv.methods.dlg_lc import DlgLc, DlgLcConfig, combine_losses
from wesv.trainer import METHODS, DataInfo, Trainer

from trainer_helpers import make_tiny_corpus, tiny_config

torch.set_num_threads(1)


def make(**kw) -> DlgLc:
    torch.manual_seed(0)
    base = dict(scale=10.0, margin=0.2)
    base.update(kw)
    m = DlgLc(DlgLcConfig(**base), TinyEncoder(), DataInfo(num_samples=12, num_classes=3,
                                                             utts=[f"u{i}" for i in range(12)]))
    m.train()
    return m


def batch(seed=0, b=6):
    g = torch.Generator().manual_seed(seed)
    wave = torch.randn(b, 400, generator=g)
    return {"wave": wave, "clean": wave + 0.01 * torch.randn(b, 400, generator=g),
            "label": torch.tensor([0, 1, 2, 0, 1, 2][:b]), "index": torch.arange(b), "utt": [f"u{i}" for i in range(b)]}


def test_registered_with_public_defaults():
    entry = METHODS.get("dlg_lc")
    assert entry.factory is DlgLc and entry.config is DlgLcConfig
    cfg = DlgLcConfig()
    assert (cfg.scale, cfg.margin, cfg.gate_start_epoch, cfg.correction_start_epoch) == (30.0, 0.2, 5, 9)
    assert (cfg.correction_temperature, cfg.correction_threshold) == (0.1, 0.5)
    assert cfg.correction_margin == "corrected" and DlgLc.needs_clean


def test_combine_losses_normalisations():
    ly, lh = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([10.0, 20.0, 30.0, 40.0])
    r, c = torch.tensor([True, True, False, False]), torch.tensor([False, False, True, False])
    assert float(combine_losses(ly, r, None, None, "public")) == pytest.approx(3.0 / 2)
    assert float(combine_losses(ly, r, lh, c, "public")) == pytest.approx((3.0 + 30.0) / 4)
    assert float(combine_losses(ly, r, lh, c, "batch")) == pytest.approx((3.0 + 30.0) / 4)
    assert float(combine_losses(ly, r, lh, c, "kept")) == pytest.approx((3.0 + 30.0) / 3)
    assert float(combine_losses(ly, torch.zeros(4, dtype=torch.bool), None, None, "public")) == 0.0


def aam_direct(m, emb, target, margin_label):
    """ArcFace loss written out: s·cos(θ + m) at margin_label, s·cos θ elsewhere, CE against target."""
    cos = F.normalize(emb) @ F.normalize(m.head.weight).t()
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    mar = cos.clone()
    rows = torch.arange(len(emb))
    mar[rows, margin_label] = torch.cos(theta[rows, margin_label] + m.head.margin)
    return F.cross_entropy(m.cfg.scale * mar, target, reduction="none")


@pytest.mark.parametrize("where", ["corrected", "original"])
def test_correction_puts_the_margin_where_the_setting_says(where):
    m = make(correction_margin=where, correction_threshold=0.0)
    m.on_epoch_start(9, 15)  # epoch 10: gate and correction on
    m.threshold = -1e9  # every sample gated out, so every one is corrected
    b = batch()
    loss, logs = m(b)
    assert logs["corrected"] == 1.0
    y_hat = m.sample_state["corrected_label"][:6]
    emb = m.encoder(b["wave"])  # BN in train mode again: same statistics as in the step
    margin_at = y_hat if where == "corrected" else b["label"]
    expected = aam_direct(m, emb.float(), y_hat, margin_at).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-4)


def test_gated_out_samples_give_no_gradient_before_correction():
    m = make()
    m.on_epoch_start(5, 15)  # epoch 6: gate on, correction off
    b = batch()
    with torch.no_grad():
        per = m.head(m.encoder(b["wave"]).float(), b["label"], reduction="none")[0]
    m.threshold = float(torch.log(per).median())  # about half gated out
    keep = torch.log(per) <= m.threshold
    assert 0 < int(keep.sum()) < 6
    grads = []
    m.encoder.register_forward_hook(lambda mod, inp, out: (out.register_hook(grads.append), None)[1])
    m.zero_grad()
    loss, _ = m(b)
    loss.backward()
    (g,) = grads
    assert torch.all(g[~keep] == 0) and torch.all(g[keep].abs().sum(1) > 0)
    # The loss is the mean over the reliable samples only.
    assert float(loss.detach()) == pytest.approx(float(per[keep].mean()), rel=1e-5)
    assert torch.equal(m.sample_state["reliable"][:6], keep)


def test_clean_pass_leaves_batchnorm_statistics_unchanged():
    m = make(correction_threshold=0.0)
    m.on_epoch_start(9, 15)
    m.threshold = -1e9
    b = batch()
    before = {k: v.clone() for k, v in m.encoder.named_buffers()}
    m.encoder(b["wave"])  # the augmented pass alone: what the step must change, and no more
    after_one = {k: v.clone() for k, v in m.encoder.named_buffers()}
    for k, v in before.items():
        m.encoder.get_buffer(k).copy_(v)
    m(b)
    for k, v in m.encoder.named_buffers():
        assert torch.equal(v, after_one[k]), k
    assert m.encoder.training


def run_epoch_end(m, losses):
    m.sample_state.update("loss", torch.arange(len(losses)), torch.tensor(losses, dtype=torch.float32))
    return m.on_epoch_end(m._epoch)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_threshold_fitted_from_the_table_and_fallbacks():
    said = Lines()
    logging.getLogger("wesv.methods.dlg_lc").addHandler(said)
    logging.getLogger("wesv.methods.dlg_lc").setLevel(logging.INFO)
    rng = np.random.default_rng(0)
    m = make()
    m.sample_state = type(m.sample_state)(400, m.sample_columns())
    m.on_epoch_start(3, 15)  # epoch 4: no gate yet; its losses give τ for epoch 5
    losses = np.exp(np.concatenate([rng.normal(-2, 0.3, 300), rng.normal(1, 0.3, 100)]))
    logs = run_epoch_end(m, losses)
    assert math.isnan(logs["gate_threshold"]) and logs["gated_out"] == 0
    tau = m._fitted
    assert -2 < tau < 1
    m.on_epoch_start(4, 15)
    assert m.gate_on and m.threshold == tau and not m.correcting
    m.sample_state.start_epoch()
    run_epoch_end(m, np.full(400, 0.5))  # degenerate: keep the previous τ, say so
    assert m._fitted == tau and any("no crossing" in line and "keeping" in line for line in said.lines)
    m2 = make(no_crossing="no_gate")
    m2.sample_state = type(m2.sample_state)(400, m2.sample_columns())
    m2.on_epoch_start(4, 15)
    m2._fitted = tau
    run_epoch_end(m2, np.full(400, 0.5))
    m2.on_epoch_start(5, 15)
    assert m2.threshold is None


def test_majority_and_precision_on_a_known_case():
    labels = np.array([0, 0, 0, 1, 1, 1])
    truth = np.array(["a", "a", "b", "c", "c", "a"])
    assert majority_speakers(labels, truth) == {0: "a", 1: "c"}
    rec = {"utt": np.array([f"u{i}" for i in range(6)]), "loss": np.ones(6), "label": labels,
           "reliable": np.array([True, True, False, True, True, False]),
           "corrected_label": np.array([-1, -1, 1, -1, -1, 0]), "threshold": np.float64(0.3)}
    out = epoch_precision(rec, {f"u{i}": s for i, s in enumerate(truth)})
    assert out["accuracy_all"] == pytest.approx(4 / 6) and out["gate_precision"] == 1.0
    # u2 (b) moved to cluster 1 (c): still wrong; u5 (a) moved to cluster 0 (a): wrong -> right.
    assert out["correction_precision"] == 0.5 and out["wrong_to_right"] == 1 and out["right_to_wrong"] == 0


def test_short_training_gates_corrects_records_and_reports(tmp_path, capsys):
    corpus = make_tiny_corpus(str(tmp_path / "c"), num_speakers=4, utts_per_speaker=6)
    # Noisy pseudo-labels: a quarter of the utterances get another speaker's label.
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    lines = open(f"{corpus}/utt2spk").read().split("\n")[:-1]
    noisy = [f"{u} spk{(int(s[3]) + 1) % 4}" if i % 4 == 3 else f"{u} {s}"
             for i, (u, s) in enumerate(line.split() for line in lines)]
    (pseudo / "utt2spk").write_text("\n".join(noisy) + "\n")
    (pseudo / "wav.scp").write_text(open(f"{corpus}/wav.scp").read())
    conf = tmp_path / "dlg.yaml"
    conf.write_text(tiny_config(str(pseudo), method="scale: 10.0\n  margin: 0.1\n  gate_start_epoch: 3\n"
                                "  correction_start_epoch: 4").replace("type: classifier", "type: dlg_lc")
                    .replace("epochs: 2", "epochs: 5"))
    exp = str(tmp_path / "exp")
    assert Trainer(load_config(str(conf)), exp).fit() == 0
    records = read_records(exp)
    assert [e for e, _ in records] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(r["loss"]).all() for _, r in records)
    assert math.isnan(float(records[1][1]["threshold"])) and math.isfinite(float(records[2][1]["threshold"]))
    import json
    rows = [json.loads(line) for line in open(os.path.join(exp, "metrics.jsonl"))]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert math.isnan(epochs[1]["gate_threshold"]) and epochs[2]["gated_out"] > 0 and epochs[4]["corrected_share"] > 0
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    from badinput import run_entry
    out = run_entry("loss_gate_report", ["--exp-dir", exp, "--truth-utt2spk", f"{corpus}/utt2spk"], capsys)
    assert out.code == 0, out.err
    report = json.load(open(os.path.join(exp, "loss_gate", "report.json")))
    assert [r["epoch"] for r in report["epochs"]] == [1, 2, 3, 4, 5]
    assert report["epochs"][0]["accuracy_all"] == pytest.approx(0.75)
    assert os.path.isfile(os.path.join(exp, "loss_gate", "precision.png"))
    assert os.path.isfile(os.path.join(exp, "loss_gate", "loss_gate.png"))


@pytest.mark.slow
def test_two_processes_gate_with_one_tau_fitted_on_the_full_table(tmp_path):
    import json
    import subprocess
    import sys

    from wesv.loss_gate.gmm import gmm_threshold

    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=8, utts_per_speaker=4)
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus, method="scale: 10.0\n  margin: 0.1\n  gate_start_epoch: 2\n"
                                "  correction_start_epoch: 3").replace("type: classifier", "type: dlg_lc_probe")
                    .replace("epochs: 2", "epochs: 3"))
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_dlg_probe.py")
    exp = str(tmp_path / "two")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           runner, "--config", str(conf), "--exp-dir", exp, "--data.batch_size", "4"],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(exp, "metrics.jsonl")) as f:
        epochs = [r for r in map(json.loads, f) if r["kind"] == "epoch"]
    assert [r["tau_ranks_agree"] for r in epochs] == [1.0, 1.0, 1.0]
    for epoch, rec in read_records(exp):
        assert np.isfinite(rec["loss"]).all()  # both ranks' halves are in the table
        expected = gmm_threshold(np.log(rec["loss"]))
        fitted = epochs[epoch - 1]["tau_fitted"]
        assert (expected is None and math.isnan(fitted)) or fitted == pytest.approx(expected, abs=1e-12)
        if epoch >= 2:  # the gate of epoch N used epoch N-1's τ, on both ranks
            assert float(rec["threshold"]) == pytest.approx(epochs[epoch - 2]["tau_fitted"], nan_ok=True)


def test_a_run_stopped_mid_epoch_resumes_with_the_same_table_and_gate(tmp_path, monkeypatch):
    import signal

    from wesv.trainer.checkpoint import load_checkpoint

    corpus = make_tiny_corpus(str(tmp_path / "c"), num_speakers=4, utts_per_speaker=6)
    conf = tmp_path / "dlg.yaml"
    conf.write_text(tiny_config(corpus, method="scale: 10.0\n  margin: 0.1\n  gate_start_epoch: 2\n"
                                "  correction_start_epoch: 3").replace("type: classifier", "type: dlg_lc")
                    .replace("epochs: 2", "epochs: 3"))
    cfg = load_config(str(conf))
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    assert Trainer(cfg, straight).fit() == 0
    calls = {"n": 0}
    real = DlgLc.forward

    def hook(self, batch):
        calls["n"] += 1
        if calls["n"] == 15:  # the 3rd step of epoch 3 (6 steps per epoch): gate and correction on
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, batch)
    monkeypatch.setattr(DlgLc, "forward", hook)
    assert Trainer(cfg, resumed).fit() == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert Trainer(cfg, resumed, resume=True).fit() == 0
    a, b = (load_checkpoint(os.path.join(e, "checkpoints", "latest.pt")) for e in (straight, resumed))
    assert all(torch.equal(a["sample_state"]["columns"][k], b["sample_state"]["columns"][k])
               for k in ("loss", "reliable", "corrected_label", "label"))
    assert a["extra"]["threshold"] == b["extra"]["threshold"] is not None
    ra, rb = dict(read_records(straight)), dict(read_records(resumed))
    assert all(np.array_equal(ra[3][k], rb[3][k]) for k in ("loss", "reliable", "corrected_label"))
