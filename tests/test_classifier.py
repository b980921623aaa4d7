"""The labelled crop dataset and the classifier method: labels, crops, margin warm-up, init-from, two-step tuning."""
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from wesv.config import load_config
from wesv.data.datasets import LabelledCropDataset, build_labelled_dataset
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.errors import WesvError
from wesv.methods.classifier import Classifier, ClassifierConfig, embedding_layer_names
from wesv.models import build_encoder, save_encoder
from wesv.trainer import METHODS, DataInfo, Trainer
from wesv.trainer.checkpoint import load_checkpoint

from trainer_helpers import make_tiny_corpus, tiny_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return make_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


def config(tmp_path, corpus, overrides=()):
    path = tmp_path / "conf.yaml"
    path.write_text(tiny_config(corpus))
    return load_config(str(path), list(overrides))


def dataset(corpus, **kw) -> LabelledCropDataset:
    return LabelledCropDataset(read_scp(f"{corpus}/wav.scp"), read_utt2spk(f"{corpus}/utt2spk"), 4000, **kw)


# ---- dataset ----------------------------------------------------------------------------------------------

def test_labels_come_from_the_sorted_utt2spk_values(corpus):
    ds = dataset(corpus)
    assert ds.num_classes == 4 and ds.speakers == ["spk0", "spk1", "spk2", "spk3"]
    sample = ds[7]
    assert sample["utt"] == "spk1-utt1" and sample["label"] == 1 and sample["index"] == 7
    assert sample["wave"].dtype == np.float32 and sample["wave"].shape == (4000,)


def test_crops_repeat_per_seed_epoch_index_and_are_segments_of_the_file(corpus):
    ds = dataset(corpus, seed=5)
    a, b = ds[3]["wave"], ds[3]["wave"]
    assert np.array_equal(a, b)
    ds.set_epoch(1)
    assert not np.array_equal(ds[3]["wave"], a)
    assert not np.array_equal(dataset(corpus, seed=6)[3]["wave"], a)
    full, _ = sf.read(read_scp(f"{corpus}/wav.scp")[ds.utts[3]], dtype="float32")
    starts = [s for s in range(len(full) - 4000 + 1) if np.array_equal(full[s:s + 4000], a)]
    assert len(starts) == 1  # a partial read returns exactly one window of the file


def test_short_utterances_follow_the_policy(tmp_path):
    path = str(tmp_path / "short.wav")
    sf.write(path, np.full(1000, 0.5, np.float32), 16000, subtype="FLOAT")
    ds = LabelledCropDataset({"u": path}, {"u": "s"}, 4000, short="pad")
    wave = ds[0]["wave"]
    assert wave.shape == (4000,) and np.all(wave[:1000] == 0.5) and np.all(wave[1000:] == 0)
    with pytest.raises(WesvError, match="shorter than the 4000-sample crop"):
        LabelledCropDataset({"u": path}, {"u": "s"}, 4000, short="error")[0]


def test_augmentation_and_the_clean_crop(corpus):
    def augment(wave, rng):
        return wave + np.float32(rng.standard_normal())

    ds = dataset(corpus, augmenter=augment, return_clean=True)
    s = ds[2]
    assert set(s) == {"wave", "label", "index", "utt", "clean"}
    shift = s["wave"] - s["clean"]
    assert np.allclose(shift, shift[0]) and shift[0] != 0
    batch = LabelledCropDataset.collate_fn([ds[0], ds[1]])
    assert batch["wave"].shape == batch["clean"].shape == (2, 4000) and batch["label"].tolist() == [0, 0]
    assert "clean" not in dataset(corpus)[0]


def test_missing_labels_fail_clearly(tmp_path, corpus):
    with pytest.raises(WesvError, match="have no utt2spk entry"):
        LabelledCropDataset(read_scp(f"{corpus}/wav.scp"), {}, 4000)
    data_dir = tmp_path / "nolabels"
    data_dir.mkdir()
    (data_dir / "wav.scp").write_text((open(f"{corpus}/wav.scp").read()))
    cfg = config(tmp_path, str(data_dir)).data
    with pytest.raises(WesvError, match="utt2spk: missing"):
        build_labelled_dataset(cfg, None, 0)


# ---- the method -------------------------------------------------------------------------------------------

def tiny_classifier(**kw) -> Classifier:
    torch.manual_seed(0)
    enc = build_encoder("ecapa_tdnn_small", {"channels": 16, "embed_dim": 16, "se_bottleneck": 8,
                                             "attention_bottleneck": 8, "fbank": {"num_mel_bins": 24}})
    return Classifier(ClassifierConfig(**kw), enc, DataInfo(num_samples=10, num_classes=5))


def test_registered_and_uses_labels():
    entry = METHODS.get("classifier")
    assert entry.factory is Classifier and entry.config is ClassifierConfig and Classifier.uses_labels


def test_forward_param_groups_and_margin_warmup():
    m = tiny_classifier(margin=0.2, margin_increase_start_epoch=1, margin_fix_start_epoch=3, backbone_lr_scale=0.1)
    batch = {"wave": torch.randn(3, 4000), "label": torch.tensor([0, 4, 2]), "index": torch.arange(3),
             "utt": ["a", "b", "c"]}
    loss, logs = m(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and 0 <= float(logs["acc"]) <= 1
    groups = {g["name"]: g for g in m.param_groups()}
    emb = set(embedding_layer_names(m.encoder))
    assert emb == {"linear.weight", "linear.bias", "embed_bn.weight", "embed_bn.bias"}
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in m.parameters())  # every parameter exactly once
    assert groups["backbone"]["lr_scale"] == 0.1 and groups["head"]["lr_scale"] == 1.0
    m.on_epoch_start(0, 4)  # 10 steps per epoch → epoch = (step + 1) / 10
    margins = []
    for step in (0, 9, 19, 29, 39):
        m.after_optimizer_step(step, 40)
        margins.append(m.head.margin)
    assert margins[:2] == [0.0, 0.0] and 0 < margins[2] < 0.2 and margins[3:] == [0.2, 0.2]
    assert m.head.margin == pytest.approx(m.margin_at(4.0))


def test_loss_falls(tmp_path, corpus):
    exp = str(tmp_path / "exp")
    Trainer(config(tmp_path, corpus, ["--trainer.epochs", "4"]), exp).fit()
    import json

    losses = [json.loads(line)["loss"] for line in open(os.path.join(exp, "metrics.jsonl"))
              if '"epoch"' in line and '"kind": "epoch"' in line]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]


def params(state: dict, names) -> dict:
    return {n: state[f"encoder.{n}"] for n in names}


def test_init_from_and_two_step_fine_tuning(tmp_path, corpus):
    first = str(tmp_path / "first")
    Trainer(config(tmp_path, corpus, ["--trainer.epochs", "1"]), first).fit()
    from wesv.models import load_encoder

    init = load_encoder(os.path.join(first, "encoder.pt")).state_dict()
    cfg = config(tmp_path, corpus, ["--trainer.init_from", os.path.join(first, "encoder.pt"),
                                    "--method.frozen_backbone_epochs", "1"])
    second = str(tmp_path / "second")
    Trainer(cfg, second).fit()
    emb = embedding_layer_names(build_encoder(cfg.encoder.name, cfg.encoder.config))
    enc_params = [n for n, _ in build_encoder(cfg.encoder.name, cfg.encoder.config).named_parameters()]
    backbone = [n for n in enc_params if n not in emb]
    e1 = load_checkpoint(os.path.join(second, "checkpoints", "epoch_1.pt"))["method"]
    e2 = load_checkpoint(os.path.join(second, "checkpoints", "epoch_2.pt"))["method"]
    # Epoch 1: backbone frozen at the init-from weights; the embedding layer trains.
    assert all(torch.equal(v, init[n]) for n, v in params(e1, backbone).items())
    assert not all(torch.equal(v, init[n]) for n, v in params(e1, emb).items())
    # Epoch 2: the whole network trains.
    assert not all(torch.equal(v, params(e1, backbone)[n]) for n, v in params(e2, backbone).items())


def test_init_from_a_different_architecture_fails(tmp_path, corpus):
    other = build_encoder("ecapa_tdnn_small", {"channels": 8, "embed_dim": 16, "se_bottleneck": 8,
                                               "attention_bottleneck": 8, "fbank": {"num_mel_bins": 24}})
    path = str(tmp_path / "other.pt")
    save_encoder(path, other)
    cfg = config(tmp_path, corpus, ["--trainer.init_from", path])
    with pytest.raises(WesvError, match=r"other\.pt: --init-from encoder does not match encoder "
                                        r"'ecapa_tdnn_small'.*shape mismatch"):
        Trainer(cfg, str(tmp_path / "exp")).fit()
