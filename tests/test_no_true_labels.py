"""Self-supervised training must never read the training data dir's true labels (utt2spk / spk2utt).

The check is an audit hook: Python reports every ``open`` to it, in this process and in forked DataLoader
workers, so any read of a label file during DINO/MoCo training fails the run, whichever code path does it.
"""
import os
import sys

import pytest

from trainer_helpers import TINY_ENCODER, make_tiny_corpus
from wesv.config import load_config
from wesv.trainer import train

LABEL_FILES = ("utt2spk", "spk2utt")
_watch: dict[str, object] = {"dir": None, "hits": []}


def _audit(event: str, args: tuple) -> None:
    if event != "open" or _watch["dir"] is None or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if os.path.dirname(path) == _watch["dir"] and os.path.basename(path) in LABEL_FILES:
        _watch["hits"].append(path)
        raise PermissionError(f"SSL training opened the true labels {path}")


sys.addaudithook(_audit)  # hooks cannot be removed; it is inert while _watch["dir"] is None


@pytest.fixture
def watched_corpus(tmp_path):
    data = make_tiny_corpus(str(tmp_path), num_speakers=3, utts_per_speaker=4, seconds=0.6)
    with open(os.path.join(data, "spk2utt"), "w") as f:  # both label files present, so a read would succeed
        f.write("spk0 spk0-utt0\n")
    _watch["dir"], _watch["hits"] = os.path.abspath(data), []
    yield data
    _watch["dir"] = None


def _ssl_config(tmp_path, data: str, method_type: str, method_body: str) -> str:
    text = (f"type: {method_type}\nseed: 1\n"
            f"data:\n  train: {data}\n  batch_size: 4\n  num_workers: 1\n"
            f"encoder:\n  {TINY_ENCODER}\n"
            f"method:\n  {method_body}\n"
            "optim:\n  name: sgd\n  lr: 0.05\n  warmup_epochs: 0\n  schedule: constant\n"
            "trainer:\n  epochs: 1\n  device: cpu\n  log_every: 1\n  progress: false\n")
    path = tmp_path / f"{method_type}.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("method_type,method_body", [
    ("dino", "num_global: 2\n  global_seconds: 0.4\n  num_local: 2\n  local_seconds: 0.25\n  out_dim: 64\n"
             "  hidden_dim: 32\n  bottleneck_dim: 16\n  collapse_grace_epochs: 5"),
    ("moco", "num_global: 2\n  global_seconds: 0.4\n  proj_dim: 16\n  proj_hidden_dim: 32\n"
             "  queue_size: 8\n  shuffle_bn_chunks: 2"),
])
def test_ssl_training_never_opens_true_labels(tmp_path, watched_corpus, method_type, method_body):
    cfg = load_config(_ssl_config(tmp_path, watched_corpus, method_type, method_body))
    code = train(cfg, str(tmp_path / f"exp_{method_type}"))
    assert code == 0
    assert _watch["hits"] == []
    assert os.path.isfile(tmp_path / f"exp_{method_type}" / "encoder.pt")


CDINO_BODY = ("num_global: 2\n  global_seconds: 0.4\n  num_local: 2\n  local_seconds: 0.25\n  out_dim: 64\n"
              "  hidden_dim: 32\n  bottleneck_dim: 16\n  collapse_grace_epochs: 5\n  p_same_cluster: 0.5")


@pytest.mark.parametrize("mode", ["fixed", "progressive"])
def test_cdino_never_opens_true_labels(tmp_path, watched_corpus, mode):
    """C-DINO reads only a pseudo-label map (fixed) or the maps it clusters itself (progressive refresh)."""
    if mode == "fixed":
        pseudo = tmp_path / "round1"
        pseudo.mkdir()
        utts = [line.split()[0] for line in open(os.path.join(watched_corpus, "wav.scp"))]
        (pseudo / "utt2spk").write_text("".join(f"{u} c{i % 3}\n" for i, u in enumerate(utts)))
        body = CDINO_BODY + f"\n  cluster_data: {pseudo}"
    else:
        body = CDINO_BODY + "\n  recluster_every: 1\n  recluster_num_clusters: 3\n  recluster_kmeans: 6"
    text = open(_ssl_config(tmp_path, watched_corpus, "cdino", body)).read().replace("epochs: 1", "epochs: 2")
    (tmp_path / "cdino.yaml").write_text(text)
    exp = tmp_path / f"exp_cdino_{mode}"
    assert train(load_config(str(tmp_path / "cdino.yaml")), str(exp)) == 0
    assert _watch["hits"] == []
    assert os.path.isfile(exp / "view_pairs" / "epoch_2.tsv")
    if mode == "progressive":
        assert os.path.isfile(exp / "clusters" / "epoch_1" / "utt2spk")


def test_the_hook_does_catch_a_label_read(watched_corpus):
    """The guard itself works: the supervised classifier reads utt2spk, and is caught."""
    with pytest.raises(PermissionError):
        open(os.path.join(watched_corpus, "utt2spk")).close()
    assert _watch["hits"]
