"""Encoders: published parameter counts, shapes for any length, save/load round trip, determinism, errors."""
import dataclasses

import pytest
import torch

from wesv.errors import WesvError
from wesv.features.fbank import FbankConfig
from wesv.models import (
    ENCODERS,
    EcapaTdnnConfig,
    ResNetSmallConfig,
    build_encoder,
    encoder_config_class,
    load_encoder,
    save_encoder,
)

SMALL = ["ecapa_tdnn_small", "resnet_small"]


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# WeSpeaker's README counts the whole embedding extractor (no classifier / projection head): ECAPA_TDNN_GLOB_c512
# 6.19 M, ECAPA_TDNN_GLOB_c1024 14.65 M, ResNet34 (m_channels 32, embed 256, two_emb_layer false) 6.63 M.
@pytest.mark.parametrize(
    "name, cfg, published",
    [
        ("ecapa_tdnn", {}, 6.19e6),
        ("ecapa_tdnn", {"channels": 1024}, 14.65e6),
        ("resnet34", {}, 6.63e6),
    ],
)
def test_parameter_counts_match_published(name: str, cfg: dict, published: float) -> None:
    model = build_encoder(name, cfg)
    assert abs(num_params(model) - published) / published < 0.03
    assert not any(p.requires_grad is False for p in model.parameters())


def test_architecture_details() -> None:
    ecapa = build_encoder("ecapa_tdnn", {"channels": 1024})
    assert ecapa.layer1.conv.kernel_size == (5,)
    assert [b.body[1].blocks[0].conv.dilation[0] for b in (ecapa.layer2, ecapa.layer3, ecapa.layer4)] == [2, 3, 4]
    assert len(ecapa.layer2.body[1].blocks) == 7  # Res2Net scale 8
    assert ecapa.mfa.out_channels == 1536 and ecapa.embed_dim == 192
    assert build_encoder("ecapa_tdnn", {"channels": 256, "mfa_channels": 0}).mfa.out_channels == 768
    resnet = build_encoder("resnet34", {})
    assert [len(s) for s in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)] == [3, 4, 6, 3]
    assert resnet.seg_1.in_features == 2 * 256 * 10  # mean+std of (8·32 channels × 80/8 bins)
    assert build_encoder("resnet34", {"fbank": {"num_mel_bins": 40}}).seg_1.in_features == 2 * 256 * 5


@pytest.mark.parametrize("name", SMALL)
def test_variable_length_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name).eval()
    with torch.no_grad():
        for samples in (400, 1000, 8000, 16000 + 123):
            out = model(0.1 * torch.randn(3, samples))
            assert out.shape == (3, model.embed_dim)
            assert torch.isfinite(out).all()
    assert model.embed_dim == encoder_config_class(name)().embed_dim


@pytest.mark.parametrize("name", SMALL)
def test_train_mode_backward_and_dither(name: str) -> None:
    torch.manual_seed(0)
    model = build_encoder(name).train()
    wave = 0.1 * torch.randn(4, 8000)
    out = model(wave)
    out.pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.frontend.training  # dither follows the encoder's mode


@pytest.mark.parametrize("name", SMALL)
def test_save_load_round_trip_and_determinism(name: str, tmp_path) -> None:
    torch.manual_seed(1)
    cfg = dataclasses.replace(encoder_config_class(name)(), embed_dim=32)
    model = build_encoder(name, cfg)
    model.train()
    for _ in range(2):  # move BatchNorm running statistics off their initial values
        model(0.1 * torch.randn(4, 4000))
    model.eval()
    wave = 0.1 * torch.randn(2, 6000)
    with torch.no_grad():
        ref = model(wave)
        assert torch.equal(ref, model(wave))  # eval mode: no dither, no batch statistics
        assert torch.allclose(model(wave[:1]), ref[:1], atol=1e-5)  # independent of the rest of the batch
    path = tmp_path / "sub" / "encoder.pt"
    save_encoder(str(path), model)
    assert [p.name for p in path.parent.iterdir()] == ["encoder.pt"]  # no temp file left behind
    loaded = load_encoder(str(path))
    assert not loaded.training and loaded.registry_name == name and loaded.cfg == cfg
    with torch.no_grad():
        assert torch.equal(loaded(wave), ref)


def test_build_from_dict_with_nested_fbank() -> None:
    model = build_encoder("ecapa_tdnn_small", {"channels": 64, "fbank": {"num_mel_bins": 40, "dither": 0.0}})
    assert model.cfg.channels == 64 and model.frontend.cfg.num_mel_bins == 40
    assert model.layer1.conv.in_channels == 40
    assert isinstance(model.cfg, encoder_config_class("ecapa_tdnn_small"))
    assert isinstance(build_encoder("resnet_small", ResNetSmallConfig(base_width=8)).cfg, ResNetSmallConfig)
    assert set(ENCODERS.names()) >= {"ecapa_tdnn", "ecapa_tdnn_small", "resnet34", "resnet_small"}
    assert ENCODERS.get("ecapa_tdnn").config is EcapaTdnnConfig
    assert isinstance(EcapaTdnnConfig().fbank, FbankConfig)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(WesvError, match="encoder.chanels: unknown key"):
        build_encoder("ecapa_tdnn", {"chanels": 256})
    with pytest.raises(WesvError, match="encoder.fbank.num_mel_bins: expected int"):
        build_encoder("resnet34", {"fbank": {"num_mel_bins": "80"}})
    with pytest.raises(WesvError, match="multiple of res2_scale"):
        build_encoder("ecapa_tdnn", {"channels": 100})
    with pytest.raises(WesvError, match="unknown encoder 'ecapa'; known: ecapa_tdnn"):
        build_encoder("ecapa", {})


def test_too_short_input_is_a_clear_error() -> None:
    model = build_encoder("resnet_small").eval()
    with pytest.raises(WesvError, match="399 samples gives no fbank frame.*at least 400"):
        model(torch.zeros(1, 399))


def test_load_errors(tmp_path) -> None:
    with pytest.raises(WesvError, match="missing.pt: encoder file not found"):
        load_encoder(str(tmp_path / "missing.pt"))
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(WesvError, match="garbage.pt: not a readable encoder file"):
        load_encoder(str(bad))
    good = tmp_path / "enc.pt"
    save_encoder(str(good), build_encoder("resnet_small", {"base_width": 4}))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(WesvError, match="truncated.pt: not a readable encoder file"):
        load_encoder(str(truncated))
    other = tmp_path / "checkpoint.pt"
    torch.save({"model": {}}, other)
    with pytest.raises(WesvError, match="checkpoint.pt: not a wesv encoder file"):
        load_encoder(str(other))


def random_bn_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial eval-mode BatchNorm (a fresh model's BN is the identity, which hides padding leaks)."""
    gen = torch.Generator().manual_seed(3)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.copy_(0.5 * torch.randn(mod.running_mean.shape, generator=gen))
            mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=gen))
            if mod.affine:
                mod.bias.data.copy_(0.3 * torch.randn(mod.bias.shape, generator=gen))
    return model.eval()


def padded_batch(waves: list[torch.Tensor], fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.full((len(waves), int(lengths.max())), fill)
    for row, w in zip(batch, waves):
        row[:len(w)] = w
    return batch, lengths


@pytest.mark.parametrize("name, cfg", [("ecapa_tdnn_small", {}), ("resnet_small", {}),
                                       ("ecapa_tdnn_small", {"fbank": {"snip_edges": False}})])
def test_padded_in_a_batch_equals_alone(name: str, cfg: dict) -> None:
    torch.manual_seed(0)
    model = random_bn_stats(build_encoder(name, cfg))
    # Odd and even frame counts (ResNet's stride-2 stages), the shortest usable input, one unpadded item.
    samples = [16000, 7013, 12345, 4160, model.min_samples, 9999, 5000]
    waves = [0.1 * torch.randn(n) for n in samples]
    with torch.inference_mode():
        alone = torch.cat([model(w[None]) for w in waves])
        batched = model(*padded_batch(waves))
        garbage = model(*padded_batch(waves, fill=7.0))  # loud padding samples change nothing either
    cos = torch.nn.functional.cosine_similarity(alone, batched)
    assert cos.min() > 0.99999, cos
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(garbage, batched, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", SMALL)
def test_lengths_none_or_full_is_the_unmasked_path(name: str) -> None:
    torch.manual_seed(0)
    model = random_bn_stats(build_encoder(name))
    wave = 0.1 * torch.randn(3, 6000)
    with torch.inference_mode():
        assert torch.equal(model(wave, torch.full((3,), 6000)), model(wave))


def test_masked_pooling_ignores_padded_frames() -> None:
    from wesv.nn.pooling import AttentiveStatsPool, TemporalStatsPool

    torch.manual_seed(0)
    x = torch.randn(2, 6, 9)
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    dirty = x.clone()
    dirty[1, :, 4:] = torch.tensor([float("nan"), float("inf"), -1e6, 1e6, 3.0])
    for pool in (TemporalStatsPool(), AttentiveStatsPool(6, 4), AttentiveStatsPool(6, 4, global_context=False)):
        got = pool(dirty, mask)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got[0], pool(x[:1])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got[1], pool(x[1:, :, :4])[0], atol=1e-5, rtol=1e-5)


def test_bad_lengths_are_clear_errors() -> None:
    model = build_encoder("resnet_small").eval()
    wave = torch.zeros(2, 8000)
    with pytest.raises(WesvError, match="399 samples gives no fbank frame.*at least 400"):
        model(wave, torch.tensor([8000, 399]))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        model(wave, torch.tensor([8000.0, 4000.0]))
    with pytest.raises(ValueError, match="exceed the padded waveform length 8000"):
        model(wave, torch.tensor([8001, 4000]))
    assert (model.sample_rate, model.min_samples) == (16000, 400)


# ------------------------------------------------------------------------------------------- stream encoder
def test_sequence_tdnn_shapes_params_save_load_and_padding(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_encoder("sequence_tdnn", {"input_dim": 16, "channels": 32, "embed_dim": 24})
    assert model.embed_dim == 24 and model.input_dim == 16
    assert num_params(build_encoder("sequence_tdnn")) == 190_656
    model.eval()
    for frames in (1, 2, 7, 25):
        assert model(torch.randn(3, frames, 16)).shape == (3, 24)
    x = torch.randn(2, 9, 16)
    x[1, 5:] = 1e3  # padding, whatever it holds
    padded = model(x, torch.tensor([9, 5]))
    alone = model(x[1:, :5])
    assert torch.nn.functional.cosine_similarity(padded[1:], alone).item() > 0.99999
    assert torch.equal(model(x, torch.tensor([9, 9])), model(x))
    save_encoder(str(tmp_path / "seq.pt"), model)
    assert torch.allclose(load_encoder(str(tmp_path / "seq.pt"))(x), model(x))
    with pytest.raises(ValueError, match="expects frames"):
        model(torch.randn(2, 9, 15))
    with pytest.raises(WesvError, match="kernel_size odd"):
        build_encoder("sequence_tdnn", {"kernel_size": 2})


def test_sequence_tdnn_learns_two_identities() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(2, 16, generator=gen)

    def batch(n):
        label = torch.arange(n) % 2
        x = centres[label][:, None, :] + 2.0 * torch.randn(n, 6, 16, generator=gen)  # noisy frames
        return x, label

    model = build_encoder("sequence_tdnn", {"input_dim": 16, "channels": 32, "embed_dim": 16})
    head = torch.nn.Linear(16, 2)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=3e-3)
    for _ in range(12):
        x, y = batch(16)
        loss = torch.nn.functional.cross_entropy(head(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = batch(40)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model(x), dim=1)
    cos = emb @ emb.T
    same = (y[:, None] == y[None, :]) & ~torch.eye(40, dtype=torch.bool)
    assert cos[same].mean() > cos[y[:, None] != y[None, :]].mean() + 0.5
    assert (head(model(x)).argmax(1) == y).float().mean() > 0.95
