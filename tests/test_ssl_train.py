"""ssl_mhfa through the one trainer: per-part learning rates, L2-SP in the loss, extraction from the exp dir alone."""
import os
import shutil

import kaldiio
import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from ssl_helpers import make_tiny_ssl  # noqa: E402
from trainer_helpers import make_tiny_corpus, tiny_config  # noqa: E402
from wesv.config import load_config  # noqa: E402
from wesv.models import load_encoder  # noqa: E402
from wesv.trainer import Trainer  # noqa: E402

torch.set_num_threads(1)


def test_per_part_lrs_l2sp_and_extraction_from_the_exp_dir(tmp_path):
    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=3, utts_per_speaker=4)
    model_dir = make_tiny_ssl(str(tmp_path / "pretrained"), "wavlm")
    encoder = (f"name: ssl_mhfa\n  model_dir: {model_dir}\n  heads: 4\n  compress_dim: 8\n  embed_dim: 16\n"
               "  ssl_lr_scale: 0.004\n  l2sp:\n    alpha: 0.01\n    form: seed")
    optim = "name: adamw\n  lr: 0.005\n  weight_decay: 0.0\n  schedule: constant"
    path = tmp_path / "conf.yaml"
    path.write_text(tiny_config(corpus, encoder=encoder, optim=optim,
                                trainer="epochs: 1\n  device: cpu\n  log_every: 1\n  progress: false\n"
                                        "  max_steps_per_epoch: 2"))
    exp = str(tmp_path / "exp")
    trainer = Trainer(load_config(str(path)), exp)
    assert trainer.fit() == 0
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["ssl_layers"] == pytest.approx(2e-5) and lrs["ssl_layers.no_decay"] == pytest.approx(2e-5)
    assert lrs["backend"] == pytest.approx(5e-3) and lrs["head"] == pytest.approx(5e-3)
    grouped = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    fe = trainer.method.encoder.frontend.model.feature_extractor
    assert not any(id(p) in grouped for p in fe.parameters())
    ckpt = torch.load(os.path.join(exp, "checkpoints", "latest.pt"), weights_only=False)
    assert not any("l2sp" in k for k in ckpt["method"])

    enc = load_encoder(os.path.join(exp, "encoder.pt"))
    wave = torch.randn(1, 6000)
    with torch.no_grad():
        before = enc(wave)
    shutil.rmtree(model_dir)  # extraction needs nothing but the exp dir
    from wesv.bin.extract import main

    out = str(tmp_path / "emb")
    with pytest.raises(SystemExit) as done:
        main(["--model-dir", exp, "--data", corpus, "--out", out, "--device", "cpu"])
    assert done.value.code == 0
    embs = dict(kaldiio.load_scp(os.path.join(out, "xvector.1.scp")))
    assert len(embs) == 12 and all(np.isfinite(v).all() and v.shape == (16,) for v in embs.values())
    with torch.no_grad():
        assert torch.allclose(load_encoder(os.path.join(exp, "encoder.pt"))(wave), before, atol=1e-5)


def test_shipped_mhfa_configs_load_with_the_seed_settings():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    vox = load_config(os.path.join(root, "egs/voxceleb/conf/wavlm_mhfa.yaml"))
    enc = vox.encoder.config
    assert (vox.encoder.name, enc.backend, enc.heads, enc.compress_dim, enc.embed_dim) == ("ssl_mhfa", "mhfa", 64,
                                                                                          128, 256)
    assert vox.optim.name == "adamw" and vox.optim.lr * enc.ssl_lr_scale == pytest.approx(2e-5)
    assert (enc.l2sp.alpha, enc.l2sp.form, vox.data.crop_seconds, vox.method.margin) == (0.01, "seed", 3.0, 0.2)
    for name in ("egs/voxceleb/conf/mhfa_lmft.yaml", "egs/mini/conf/mhfa_lmft.yaml"):
        lmft = load_config(os.path.join(root, name))
        assert lmft.method.margin == 0.5 and lmft.encoder.name == "ssl_mhfa"
    assert load_config(os.path.join(root, "egs/voxceleb/conf/mhfa_lmft.yaml")).data.crop_seconds == 6.0
    mini = load_config(os.path.join(root, "egs/mini/conf/mhfa.yaml"))
    lmft = load_config(os.path.join(root, "egs/mini/conf/mhfa_lmft.yaml"))
    assert mini.encoder == lmft.encoder  # --init-from the last round needs the same encoder


def test_classifier_uses_the_encoder_parts(tmp_path):
    from ssl_helpers import ssl_encoder_config
    from wesv.methods.classifier import Classifier, ClassifierConfig
    from wesv.models import build_encoder
    from wesv.trainer import DataInfo

    enc = build_encoder("ssl_mhfa", ssl_encoder_config(make_tiny_ssl(str(tmp_path)), ssl_lr_scale=0.01))
    method = Classifier(ClassifierConfig(frozen_backbone_epochs=1, backbone_lr_scale=0.5), enc, DataInfo(10, 3))
    scales = {g["name"]: g["lr_scale"] for g in method.param_groups()}
    assert scales == {"ssl_layers": pytest.approx(0.005), "backend": 1.0, "head": 1.0}
    layers = enc.frontend.model.encoder.layers.parameters()
    method.on_epoch_start(0, 2)
    assert not any(p.requires_grad for p in layers) and all(p.requires_grad for p in enc.backend.parameters())
    method.on_epoch_start(1, 2)
    assert all(p.requires_grad for p in enc.frontend.model.encoder.layers.parameters())
    assert not any(p.requires_grad for p in enc.frontend.model.feature_extractor.parameters())  # stays frozen


def test_dlg_lc_adds_the_encoder_l2sp(tmp_path):
    from ssl_helpers import ssl_encoder_config
    from wesv.methods.dlg_lc import DlgLc, DlgLcConfig
    from wesv.models import build_encoder
    from wesv.trainer import DataInfo

    enc = build_encoder("ssl_mhfa", ssl_encoder_config(make_tiny_ssl(str(tmp_path)), l2sp={"alpha": 0.01}))
    method = DlgLc(DlgLcConfig(), enc, DataInfo(10, 3)).train()
    method.on_epoch_start(0, 2)
    loss, logs = method({"wave": torch.randn(2, 4000), "label": torch.tensor([0, 2]), "index": torch.tensor([1, 5])})
    assert "l2sp" in logs and float(loss.detach()) == pytest.approx(1.0, abs=1e-4)  # seed form at w = w0
    assert {g["name"] for g in method.param_groups()} == {"ssl_layers", "backend", "head"}
