"""pretrain_ssl: a tiny wav2vec 2.0 pretrained on a data dir loads as an ssl_mhfa front-end; bad inputs fail clean."""
import json
import os

import pytest
import torch

pytest.importorskip("transformers")

from badinput import assert_clean_error, run_entry, tree_digest  # noqa: E402
from trainer_helpers import make_tiny_corpus  # noqa: E402
from wesv.models import build_encoder  # noqa: E402

torch.set_num_threads(1)


def test_pretrained_dir_loads_as_the_front_end(tmp_path, capsys):
    data = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=2, utts_per_speaker=2)
    out = tmp_path / "ssl"
    done = run_entry("pretrain_ssl", ["--data", data, "--out", out, "--steps", 3, "--batch-size", 2,
                                      "--crop-seconds", 0.5, "--log-every", 1], capsys)
    assert done.code == 0, done.err
    log = [json.loads(line) for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] > 0 for r in log)
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]
    enc = build_encoder("ssl_mhfa", {"model_dir": str(out), "heads": 2, "compress_dim": 8, "embed_dim": 8}).eval()
    assert enc.frontend.frame_rate == 50.0 and enc.frontend.num_layers == 3
    with torch.no_grad():
        assert enc(torch.randn(1, 8000)).shape == (1, 8)

    before = tree_digest(str(out))
    again = run_entry("pretrain_ssl", ["--data", data, "--out", out, "--steps", 1], capsys)
    assert_clean_error(again, str(out), "--force")
    assert tree_digest(str(out)) == before
    missing = run_entry("pretrain_ssl", ["--data", tmp_path / "nodata", "--out", tmp_path / "x"], capsys)
    assert_clean_error(missing, "nodata", "wav.scp")
