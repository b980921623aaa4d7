"""Bad inputs of the SSL front-end through the CLIs: a hub id or missing model dir is one line, nothing written."""
import os

import pytest

pytest.importorskip("transformers")

from badinput import assert_clean_error, run_entry  # noqa: E402
from trainer_helpers import make_tiny_corpus, tiny_config  # noqa: E402


@pytest.mark.parametrize("model_dir", ["microsoft/wavlm-base-plus", "no/such/dir"])
def test_train_with_a_hub_id_or_missing_model_dir(tmp_path, capsys, model_dir):
    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=2, utts_per_speaker=2)
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus, encoder=f"name: ssl_mhfa\n  model_dir: {model_dir}"))
    exp = tmp_path / "exp"
    out = run_entry("train", ["--config", conf, "--exp-dir", exp], capsys)
    assert_clean_error(out, model_dir, "model directory not found", "huggingface-cli download")
    assert not os.path.exists(exp)


def test_extract_with_a_missing_ssl_model_beside_encoder_pt(tmp_path, capsys):
    from ssl_helpers import make_tiny_ssl, ssl_encoder_config
    from wesv.models import build_encoder, save_encoder

    src = make_tiny_ssl(str(tmp_path / "pretrained"))
    exp = tmp_path / "exp"
    save_encoder(str(exp / "encoder.pt"), build_encoder("ssl_mhfa", ssl_encoder_config(src)))
    import shutil

    shutil.rmtree(exp / "ssl_model")  # e.g. only encoder.pt was copied
    corpus = make_tiny_corpus(str(tmp_path / "corpus"), num_speakers=2, utts_per_speaker=1)
    out = run_entry("extract", ["--model-dir", exp, "--data", corpus, "--out", tmp_path / "emb"], capsys)
    assert_clean_error(out, "ssl_model", "copy the whole experiment dir")
