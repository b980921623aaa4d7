"""Multi-modal DLG-LC: stream frames follow the audio crop, branches train and gate together, missing streams
fall back to the audio branch, the branch encoders are written beside the exported audio encoder."""
import json
import math
import os

import kaldiio
import numpy as np
import pytest
import torch

from wesv.config import load_config
from wesv.data.datadir import read_scp, read_utt2spk
from wesv.data.datasets import StreamCropDataset, build_labelled_dataset
from wesv.loss_gate.record import read_records
from wesv.methods.dlg_lc_mm import MultiModalDlgLc, MultiModalDlgLcConfig
from wesv.trainer import METHODS, Trainer

from trainer_helpers import make_tiny_corpus, tiny_config

torch.set_num_threads(1)
FPS = 10.0


def add_faces(data: str, dim: int = 8, missing: tuple[str, ...] = (), seed: int = 0) -> None:
    """face.scp: per speaker an identity vector, per frame noise; frame i holds i in its first value."""
    rng = np.random.default_rng(seed)
    utt2spk = read_utt2spk(os.path.join(data, "utt2spk"))
    ident = {s: rng.standard_normal(dim) for s in sorted(set(utt2spk.values()))}
    with kaldiio.WriteHelper(f"ark,scp:{data}/face.ark,{data}/face.scp") as w:
        for utt, spk in utt2spk.items():
            if utt in missing:
                continue
            frames = ident[spk] + 0.3 * rng.standard_normal((8, dim))
            frames[:, 0] = np.arange(8)
            w(utt, frames.astype(np.float32))
    with open(os.path.join(data, "stream_info.json"), "w") as f:
        json.dump({"face": {"frame_rate": FPS, "dim": dim}}, f)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    data = make_tiny_corpus(str(tmp_path_factory.mktemp("mm")), num_speakers=4, utts_per_speaker=6)
    add_faces(data, missing=("spk0-utt0", "spk1-utt1"))
    return data


def test_registered():
    assert METHODS.get("dlg_lc_mm").factory is MultiModalDlgLc
    assert MultiModalDlgLcConfig().streams == ["face"] and MultiModalDlgLcConfig().gate_mode == "mean"


def test_stream_frames_cover_the_audio_crop(corpus):
    cfg = load_config_text(corpus, "")
    ds = build_labelled_dataset(cfg.data, None, 0, return_clean=True, streams=["face"])
    assert isinstance(ds, StreamCropDataset) and ds.stream_dims == {"face": 8}
    wav = read_scp(os.path.join(corpus, "wav.scp"))
    for i in range(len(ds)):
        s = ds[i]
        if s["utt"] in ("spk0-utt0", "spk1-utt1"):
            assert s["stream_face"] is None
            continue
        full = read_full(wav[s["utt"]])
        start = next(k for k in range(len(full) - len(s["clean"]) + 1)
                     if np.array_equal(full[k:k + len(s["clean"])], s["clean"]))
        first = min(int(math.floor(start / 16000 * FPS + 1e-9)), 7)
        assert s["stream_face"].shape == (round(0.25 * FPS), 8) and s["stream_face"][0, 0] == first
    batch = ds.collate_fn([ds[0], ds[1], ds[7]])
    assert batch["stream_face"].shape == (3, 2, 8) and batch["stream_face_mask"].tolist() == [False, True, False]


def read_full(path):
    import soundfile as sf
    return sf.read(path, dtype="float32")[0]


def load_config_text(corpus, method_extra, epochs=2, tmp=None):
    import tempfile
    d = tmp or tempfile.mkdtemp()
    path = os.path.join(d, "mm.yaml")
    text = tiny_config(corpus, method="scale: 10.0\n  margin: 0.1\n  gate_start_epoch: 2\n  correction_start_epoch: 3"
                       "\n  stream_encoder:\n    name: sequence_tdnn\n    channels: 16\n    attention_bottleneck: 8\n"
                       "    embed_dim: 8\n    dilations: [1]" + method_extra)
    text = text.replace("type: classifier", "type: dlg_lc_mm").replace("epochs: 2", f"epochs: {epochs}")
    with open(path, "w") as f:
        f.write(text)
    return load_config(path)


@pytest.mark.parametrize("gate_mode", ["mean", "all"])
def test_training_gates_corrects_and_writes_branches(corpus, tmp_path, gate_mode):
    cfg = load_config_text(corpus, f"\n  gate_mode: {gate_mode}\n  correction_agree: true", epochs=3,
                           tmp=str(tmp_path))
    exp = str(tmp_path / "exp")
    assert Trainer(cfg, exp).fit() == 0
    rows = [json.loads(line) for line in open(os.path.join(exp, "metrics.jsonl"))]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert len(epochs) == 3 and all(math.isfinite(r["loss"]) for r in epochs)
    assert epochs[-1]["face_share"] == pytest.approx(22 / 24) and epochs[-1]["audio_share"] == 1.0
    if gate_mode == "all":
        assert "gate_threshold_face" in epochs[0] and "gate_threshold_audio" in epochs[0]
    records = read_records(exp)
    assert len(records) == 3 and np.isfinite(records[-1][1]["loss"]).all()
    from wesv.models import load_encoder
    face = load_encoder(os.path.join(exp, "branch_face.pt"))
    assert face(torch.randn(2, 5, 8)).shape == (2, 8)
    audio = load_encoder(os.path.join(exp, "encoder.pt"))
    assert audio(torch.randn(1, 8000)).shape[1] == 16


def test_samples_missing_the_stream_fall_back_to_audio(corpus):
    cfg = load_config_text(corpus, "")
    ds = build_labelled_dataset(cfg.data, None, 0, return_clean=True, streams=["face"])
    info = MultiModalDlgLc.data_info(cfg.method, ds)
    from wesv.models import build_encoder
    m = MultiModalDlgLc(cfg.method, build_encoder(cfg.encoder.name, cfg.encoder.config), info)
    m.train()
    m.on_epoch_start(0, 3)
    batch = ds.collate_fn([ds[i] for i in (0, 1, 2, 3)])  # utt0 of spk0 has no face
    loss, logs = m(batch)
    assert torch.isfinite(loss) and logs["face_present"] == 0.75
    face_loss = m.sample_state["loss_face"][:4]
    assert torch.isnan(face_loss[0]) and torch.isfinite(face_loss[1:]).all()
    both = torch.stack([m.sample_state["loss_audio"][:4], face_loss])
    assert torch.allclose(m.sample_state["loss"][:4], torch.nanmean(both, 0))


def test_missing_stream_scp_is_a_clear_error(tmp_path):
    from wesv.errors import WesvError
    data = make_tiny_corpus(str(tmp_path), num_speakers=2, utts_per_speaker=3)
    cfg = load_config_text(data, "", tmp=str(tmp_path))
    with pytest.raises(WesvError, match="face.scp: missing; method.streams names 'face'"):
        build_labelled_dataset(cfg.data, None, 0, streams=["face"])


def test_extract_stream_writes_embeddings_of_present_utterances(corpus, tmp_path, capsys):
    from badinput import run_entry

    from wesv.models import build_encoder, save_encoder
    from wesv.scoring.io import read_embeddings

    enc = build_encoder("sequence_tdnn", {"input_dim": 8, "channels": 16, "attention_bottleneck": 8, "embed_dim": 8,
                                          "dilations": [1]})
    model = str(tmp_path / "branch_face.pt")
    save_encoder(model, enc)
    out = tmp_path / "emb"
    res = run_entry("extract_stream", ["--model", model, "--data", corpus, "--stream", f"{corpus}/face.scp",
                                       "--out", out], capsys)
    assert res.code == 0, res.err
    keys, mat = read_embeddings(str(out / "xvector.scp"))
    assert len(keys) == 22 and "spk0-utt0" not in keys and mat.shape == (22, 8)
    assert np.isfinite(mat).all() and (out / "mean.vec").is_file()


def test_extract_stream_without_a_model_takes_the_mean_frame(corpus, tmp_path, capsys):
    from badinput import run_entry

    from wesv.data.streams import read_stream
    from wesv.scoring.io import read_embeddings

    out = tmp_path / "mean"
    assert run_entry("extract_stream", ["--data", corpus, "--stream", f"{corpus}/face.scp", "--out", out],
                     capsys).code == 0
    keys, mat = read_embeddings(str(out / "xvector.scp"))
    frames = read_stream(f"{corpus}/face.scp")
    assert np.allclose(mat[0], frames[keys[0]].mean(0), atol=1e-6)
