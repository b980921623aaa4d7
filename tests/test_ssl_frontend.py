"""The transformers SSL front-end, the MHFA encoder, per-part learning rates, L2-SP and self-contained export."""
import os
import shutil

import pytest
import torch

pytest.importorskip("transformers")

from ssl_helpers import make_tiny_ssl, ssl_encoder_config  # noqa: E402
from wesv.errors import WesvError  # noqa: E402
from wesv.features.hf_frontend import HfFrontEndConfig, HfSslFrontEnd  # noqa: E402
from wesv.losses.l2sp import L2SP, L2SPConfig  # noqa: E402
from wesv.models import build_encoder, load_encoder, save_encoder  # noqa: E402


@pytest.fixture(scope="module")
def wavlm_dir(tmp_path_factory) -> str:
    return make_tiny_ssl(str(tmp_path_factory.mktemp("ssl")), "wavlm")


def test_frontend_returns_every_hidden_state(wavlm_dir):
    fe = HfSslFrontEnd(HfFrontEndConfig(model_dir=wavlm_dir)).eval()
    assert (fe.sample_rate, fe.frame_shift, fe.frame_rate, fe.feature_dim, fe.num_layers) == (16000, 320, 50.0, 32, 3)
    assert fe.num_frames(fe.min_samples) == 1 and fe.num_frames(fe.min_samples - 1) == 0
    wave = torch.randn(2, 8000)
    feats = fe(wave)
    assert feats.shape == (2, fe.num_frames(8000), 3, 32)
    lengths = torch.tensor([8000, 5000])
    assert torch.equal(fe.num_frames(lengths), fe.model._get_feat_extract_output_lengths(lengths))
    out = fe.model(wave, output_hidden_states=True)
    assert torch.allclose(feats[:, :, -1], out.hidden_states[-1], atol=1e-6)


@pytest.mark.parametrize("kind", ["wavlm", "hubert", "wav2vec2"])
def test_padded_item_embeds_as_alone(tmp_path, kind):
    model_dir = make_tiny_ssl(str(tmp_path), kind)  # layer-norm CNN: group norm is not padding-invariant
    for backend in ("mhfa", "ecapa"):
        enc = build_encoder("ssl_mhfa", ssl_encoder_config(model_dir, backend=backend)).eval()
        torch.manual_seed(1)
        a, b = torch.randn(5000), torch.randn(8000)
        batch = torch.zeros(2, 8000)
        batch[0, :5000], batch[1] = a, b
        with torch.no_grad():
            padded = enc(batch, torch.tensor([5000, 8000]))
            alone = enc(a[None])
        assert torch.nn.functional.cosine_similarity(padded[0], alone[0], dim=0) > 0.9999


def test_missing_or_non_speech_dir_is_one_clear_line(tmp_path):
    for name in ("microsoft/wavlm-base-plus", str(tmp_path / "nope")):  # a hub id is a missing local dir
        with pytest.raises(WesvError, match="model directory not found") as err:
            build_encoder("ssl_mhfa", {"model_dir": name})
        assert name in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(WesvError, match="not a speech SSL model"):
        build_encoder("ssl_mhfa", {"model_dir": str(tmp_path / "bert")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(WesvError, match="no config.json"):
        build_encoder("ssl_mhfa", {"model_dir": str(tmp_path / "empty")})


def test_frozen_parts_get_no_gradient(wavlm_dir):
    enc = build_encoder("ssl_mhfa", ssl_encoder_config(wavlm_dir)).train()
    enc(torch.randn(2, 4000)).pow(2).sum().backward()
    model = enc.frontend.model
    for name, p in model.named_parameters():
        frozen = name.startswith(("feature_extractor", "feature_projection", "encoder.pos_conv_embed",
                                   "masked_spec_embed"))
        assert (p.grad is None) == frozen, name
    assert all(p.grad is not None for p in enc.backend.parameters())
    groups = enc.param_groups()
    grouped = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in grouped for p in model.feature_extractor.parameters())  # frozen: in no group


def test_l2sp_zero_at_pretrained_and_gradient_points_back(wavlm_dir):
    w = torch.nn.Parameter(torch.randn(4, 3))
    for form in ("squared", "seed"):
        reg = L2SP([("w", w)], L2SPConfig(alpha=0.1, form=form))
        assert float(reg.distance().detach()) == pytest.approx(0.0, abs=1e-5)
        with torch.no_grad():
            w.add_(torch.randn_like(w))
        w.grad = None
        reg.distance().backward()
        step = -w.grad  # a descent step moves w towards w₀
        assert float((step * (reg.ref0 - w.detach())).sum()) > 0
        assert torch.allclose(step / step.norm(), (reg.ref0 - w.detach()) / (reg.ref0 - w.detach()).norm(),
                              atol=1e-5)
        with torch.no_grad():
            w.copy_(reg.ref0)
    enc = build_encoder("ssl_mhfa", ssl_encoder_config(wavlm_dir, l2sp={"alpha": 0.01}))
    assert not any("l2sp" in k for k in enc.state_dict())  # w₀ never goes into a checkpoint
    ce = torch.tensor(2.5, requires_grad=True)
    loss, logs = enc.regularize(ce)
    assert float(logs["l2sp"]) == pytest.approx(0.0, abs=1e-5) and float(loss.detach()) == pytest.approx(1.0, abs=1e-5)


def test_export_reloads_from_exp_dir_alone(tmp_path):
    src = make_tiny_ssl(str(tmp_path / "pretrained"), "wavlm")
    enc = build_encoder("ssl_mhfa", ssl_encoder_config(src)).train()
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=0.5)
    enc(torch.randn(2, 4000)).pow(2).mean().backward()
    opt.step()  # fine-tuned SSL weights differ from the pretrained ones
    enc.eval()
    exp = tmp_path / "exp"
    save_encoder(str(exp / "encoder.pt"), enc)
    payload = torch.load(str(exp / "encoder.pt"), weights_only=True)
    assert not any(k.startswith("frontend.model.") for k in payload["state_dict"])  # the SSL model is beside it
    assert payload["config"]["model_dir"] == "ssl_model" and (exp / "ssl_model" / "config.json").is_file()
    shutil.rmtree(tmp_path / "pretrained")
    moved = tmp_path / "moved"
    shutil.move(str(exp), str(moved))  # relative to the encoder file: the exp dir may move
    wave = torch.randn(3, 6000)
    with torch.no_grad():
        again = load_encoder(str(moved / "encoder.pt"))(wave)
        assert torch.allclose(enc(wave), again, atol=1e-5)
    assert sorted(os.listdir(moved)) == ["encoder.pt", "ssl_model"]  # no temp dirs left behind


def test_a_replaced_or_missing_ssl_model_is_refused(tmp_path):
    src = make_tiny_ssl(str(tmp_path / "pretrained"), "wavlm")
    save_encoder(str(tmp_path / "a" / "encoder.pt"), build_encoder("ssl_mhfa", ssl_encoder_config(src)))
    other = make_tiny_ssl(str(tmp_path / "other"), "wavlm", seed=1)
    shutil.rmtree(tmp_path / "a" / "ssl_model")
    with pytest.raises(WesvError, match="needs .*ssl_model beside it"):
        load_encoder(str(tmp_path / "a" / "encoder.pt"))
    shutil.copytree(other, tmp_path / "a" / "ssl_model")
    with pytest.raises(WesvError, match="not the one this encoder file was written with"):
        load_encoder(str(tmp_path / "a" / "encoder.pt"))


def test_encoder_files_in_one_dir_keep_their_own_ssl_model(tmp_path):
    src = make_tiny_ssl(str(tmp_path / "pretrained"), "wavlm")
    enc = build_encoder("ssl_mhfa", ssl_encoder_config(src)).eval()
    save_encoder(str(tmp_path / "e" / "encoder.pt"), enc)
    with torch.no_grad():
        for p in enc.frontend.model.parameters():
            p.add_(0.1)
    save_encoder(str(tmp_path / "e" / "encoder_avg.pt"), enc)  # e.g. average_model beside encoder.pt
    assert sorted(os.listdir(tmp_path / "e")) == ["encoder.pt", "encoder_avg.pt", "encoder_avg.ssl_model",
                                                  "ssl_model"]
    wave = torch.randn(1, 4000)
    with torch.no_grad():
        a = load_encoder(str(tmp_path / "e" / "encoder.pt"))(wave)
        b = load_encoder(str(tmp_path / "e" / "encoder_avg.pt"))(wave)
    assert not torch.allclose(a, b) and torch.allclose(b, enc(wave), atol=1e-5)


def test_gradient_checkpointing_same_gradients_and_bf16_autocast(wavlm_dir):
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        enc = build_encoder("ssl_mhfa", ssl_encoder_config(wavlm_dir, gradient_checkpointing=ckpt)).train()
        torch.manual_seed(1)
        enc(torch.randn(2, 4000)).pow(2).sum().backward()
        grads.append(enc.frontend.model.encoder.layers[0].feed_forward.intermediate_dense.weight.grad.clone())
    model = enc.frontend.model
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = enc.eval()(torch.randn(2, 4000), torch.tensor([4000, 3000]))
    assert emb.shape == (2, 16) and torch.isfinite(emb.float()).all()
