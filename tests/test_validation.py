"""Validation during training: the logged EER/minDCF equal a separate extraction + scoring; training unchanged."""
import json
import os

import pytest

from trainer_helpers import make_tiny_corpus, tiny_config
from wesv.config import load_config
from wesv.errors import WesvError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny labelled train dir and an evaluation dir (other seed) with all-pairs trials."""
    root = tmp_path_factory.mktemp("val")
    train = make_tiny_corpus(str(root / "tr"))
    test = make_tiny_corpus(str(root / "te"), num_speakers=3, utts_per_speaker=4, seed=5)
    utts = [line.split()[0] for line in open(os.path.join(test, "wav.scp"))]
    with open(os.path.join(test, "trials"), "w") as f:
        for i, a in enumerate(utts):
            for b in utts[i + 1:]:
                f.write(f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}\n")
    return train, test


def _train(tmp_path, train, name, validation=None):
    from wesv.trainer.trainer import Trainer

    sections = {"trainer": "epochs: 2\n  device: cpu\n  log_every: 1\n  progress: false\n  max_steps_per_epoch: 2"}
    if validation:
        sections["validation"] = validation
    conf = tmp_path / f"{name}.yaml"
    conf.write_text(tiny_config(train, **sections))
    exp = str(tmp_path / name)
    assert Trainer(load_config(str(conf)), exp).fit() == 0
    return exp, [json.loads(line) for line in open(os.path.join(exp, "metrics.jsonl"))]


def test_validation_equals_separate_scoring_and_never_steers(tmp_path, corpus):
    from wesv.bin import compute_metrics, extract, score
    from wesv.trainer.validation import validation_subset

    train, test = corpus
    exp, records = _train(tmp_path, train, "val", f"data: {test}\n  every: 2\n  max_utts: 9")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert "val_eer" not in epochs[0] and {"val_eer", "val_mindcf", "val_time_s"} <= set(epochs[1])
    # the run without validation trains identically (before extract sets the thread count)
    _, plain = _train(tmp_path, train, "plain")
    assert [r["loss"] for r in plain if r["kind"] == "step"] == [r["loss"] for r in records if r["kind"] == "step"]
    # the same encoder (encoder.pt is exported after the last epoch), extracted and scored by the commands
    from wesv.config.train import ValidationConfig
    wav_scp, enroll, test_ids, label = validation_subset(ValidationConfig(data=test, max_utts=9))
    assert len(wav_scp) == 9
    sub = tmp_path / "sub"
    os.makedirs(sub)
    (sub / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in wav_scp.items()))
    (sub / "trials").write_text("".join(f"{e} {t} {'target' if lab else 'nontarget'}\n"
                                        for e, t, lab in zip(enroll, test_ids, label)))
    for module, argv in ((extract, ["--model-dir", exp, "--data", sub, "--out", sub / "emb"]),
                         (extract, ["--merge", "--data", sub, "--out", sub / "emb"]),
                         (score, ["--trials", sub / "trials", "--enroll-emb", sub / "emb" / "xvector.scp",
                                  "--test-emb", sub / "emb" / "xvector.scp", "--out", sub / "scores"]),
                         (compute_metrics, ["--trials", sub / "trials", "--scores", sub / "scores",
                                            "--json", sub / "m.json"])):
        with pytest.raises(SystemExit) as stop:
            module.main([str(a) for a in argv])
        assert stop.value.code == 0
    ref = json.load(open(sub / "m.json"))
    assert epochs[1]["val_eer"] == pytest.approx(ref["EER"], abs=1e-6)
    assert epochs[1]["val_mindcf"] == pytest.approx(ref["minDCF@0.01"], abs=1e-6)
    assert os.path.isfile(os.path.join(exp, "loss.png"))


def test_bad_validation_sections_fail_before_training(tmp_path, corpus):
    from wesv.config.train import ValidationConfig
    from wesv.trainer.validation import validation_subset

    train, test = corpus
    with pytest.raises(WesvError, match="no trials file"):
        validation_subset(ValidationConfig(data=train))
    with pytest.raises(WesvError, match="raise validation.max_utts"):
        validation_subset(ValidationConfig(data=test, max_utts=2, seed=1))
    conf = tmp_path / "c.yaml"
    conf.write_text(tiny_config(train, validation=f"data: {test}\n  every: 0"))
    with pytest.raises(WesvError, match="every"):
        load_config(str(conf))


def test_validation_may_change_on_resume(corpus):
    from wesv.config.train import config_from_dict, config_to_dict
    from wesv.trainer.resume_check import check_resume_config

    train, test = corpus
    old = config_to_dict(config_from_dict({"type": "classifier", "encoder": {"name": "resnet_small"}}))
    assert "validation" not in old  # off: the mapping is the one of a wesv without validation
    raw = dict(old, validation={"data": test, "every": 1, "max_utts": 50, "seed": 0})
    new = config_to_dict(config_from_dict(raw))
    assert new["validation"] == raw["validation"] and config_from_dict(new) == config_from_dict(raw)
    check_resume_config(old, new, "latest.pt", "exp")  # turned on, then off again: no error
    check_resume_config(new, old, "latest.pt", "exp")
