"""Bad-input catalogue of training: one clean line, no traceback, no output changed and no empty exp dir left."""
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from wesv.config import load_config
from wesv.lock import exclusive_lock
from wesv.log import setup_logging
from wesv.trainer import Trainer
from wesv.trainer.checkpoint import load_checkpoint

from badinput import assert_clean_error, run_entry, tree_digest
from trainer_helpers import make_tiny_corpus, tiny_config

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def wesv_logging():
    """The wesv stderr handler, made outside any test's capsys (else it would write to a closed capture later)."""
    setup_logging()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return make_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus):
    """A finished 1-epoch run (6 steps): its conf and exp dir; tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("finished")
    conf = root / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    exp = root / "exp"
    assert Trainer(load_config(str(conf), ["--trainer.epochs", "1"]), str(exp)).fit() == 0
    return conf, exp


def copy_exp(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def train(capsys, conf, exp, *extra):
    return run_entry("train", ["--config", conf, "--exp-dir", exp, *extra], capsys)


def bad_corpus(tmp_path, corpus, name: str, wave: np.ndarray, subtype: str = "FLOAT", rate: int = 16000,
               copies: int = 1) -> str:
    """A copy of ``corpus``'s data dir with ``copies`` more utterances ``name``, ``name1``, ... holding ``wave``.

    Four copies make 28 utterances, 7 full batches of 4: every utterance is drawn in the first epoch.
    """
    data = tmp_path / "data"
    data.mkdir()
    path = tmp_path / f"{name}.wav"
    sf.write(str(path), wave, rate, subtype=subtype)
    with open(os.path.join(corpus, "wav.scp")) as f:
        wav = f.read()
    with open(os.path.join(corpus, "utt2spk")) as f:
        spk = f.read()
    names = [name + (str(i) if i else "") for i in range(copies)]
    (data / "wav.scp").write_text(wav + "".join(f"{n} {path}\n" for n in names))
    (data / "utt2spk").write_text(spk + "".join(f"{n} spk0\n" for n in names))
    return str(data)


# ---- resume with a changed config -------------------------------------------------------------------------

def test_resume_with_a_changed_batch_size_is_refused(tmp_path, capsys, finished):
    conf, src = finished
    exp = copy_exp(src, tmp_path / "exp")
    before = tree_digest(str(exp))
    out = train(capsys, conf, exp, "--resume", "--trainer.epochs", "2", "--data.batch_size", "3")
    assert_clean_error(out, "checkpoints/latest.pt", "data.batch_size 4 → 3", "new --exp-dir",
                       "train it again from scratch", "--trainer.resume_changes")
    assert tree_digest(str(exp)) == before


def test_resume_with_safe_changes_and_more_epochs_continues(tmp_path, capsys, finished):
    conf, src = finished
    exp = copy_exp(src, tmp_path / "exp")
    out = train(capsys, conf, exp, "--resume", "--trainer.epochs", "2", "--data.num_workers", "1",
                "--trainer.log_every", "3")
    assert out.code == 0, out.err
    log = (exp / "train.log").read_text()
    assert "data.num_workers 0 → 1" in log and "trainer.epochs 1 → 2: training continues" in log
    assert log.count("preflight: 24 utterances") == 1  # the first start checked the data, the resume does not
    ckpt = load_checkpoint(str(exp / "checkpoints" / "latest.pt"))
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 12 and ckpt["finished"]


def test_resume_changes_lets_a_listed_key_through(tmp_path, capsys, finished):
    conf, src = finished
    exp = copy_exp(src, tmp_path / "exp")
    out = train(capsys, conf, exp, "--resume", "--trainer.epochs", "2", "--optim.lr", "0.05",
                "--trainer.resume_changes", "[optim.lr]")
    assert out.code == 0, out.err
    assert "trainer.resume_changes: optim.lr 0.1 → 0.05" in (exp / "train.log").read_text()


def test_fewer_epochs_on_resume_is_refused(tmp_path, capsys, finished):
    conf, src = finished
    exp = copy_exp(src, tmp_path / "exp")
    ckpt = load_checkpoint(str(exp / "checkpoints" / "latest.pt"))
    ckpt["config"]["trainer"]["epochs"] = 3  # as if the run had been started for 3 epochs
    torch.save(ckpt, str(exp / "checkpoints" / "latest.pt"))
    before = tree_digest(str(exp))
    assert_clean_error(train(capsys, conf, exp, "--resume", "--trainer.epochs", "2"), "trainer.epochs 3 → 2")
    assert tree_digest(str(exp)) == before


# ---- the exp dir lock -------------------------------------------------------------------------------------

def test_a_locked_exp_dir_refuses_a_second_run_naming_the_pid(tmp_path, capsys, corpus):
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(corpus))
    exp = tmp_path / "exp"
    exp.mkdir()
    with exclusive_lock(str(exp / ".lock"), "a test"):
        before = tree_digest(str(exp))
        out = train(capsys, conf, exp)
        assert_clean_error(out, f"{exp}/.lock: locked by pid {os.getpid()} on", "(a test)")
        assert tree_digest(str(exp)) == before and os.listdir(exp) == [".lock"]


# ---- bad audio --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 1])
def test_nan_audio_names_the_utterance_and_file(tmp_path, capsys, corpus, workers):
    wave = 0.1 * np.sin(np.arange(8000) / 5.0).astype(np.float32)
    wave[::50] = np.nan  # every crop holds some
    data = bad_corpus(tmp_path, corpus, "nanutt", wave, copies=4)
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(data))
    out = train(capsys, conf, tmp_path / "exp", "--trainer.epochs", "1", "--data.num_workers", workers)
    assert_clean_error(out, "utterance 'nanutt", "nanutt.wav", "holds NaN/inf samples (80,", "re-create the file")
    assert "Original Traceback" not in out.err


def test_audio_under_one_frame_is_refused_by_preflight_and_at_load(tmp_path, capsys, corpus):
    data = bad_corpus(tmp_path, corpus, "tiny", np.full(160, 0.1, np.float32), subtype="PCM_16", copies=4)  # 10 ms
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(data))
    exp = tmp_path / "exp"
    out = train(capsys, conf, exp, "--trainer.epochs", "1")  # preflight auto: 28 utterances
    assert_clean_error(out, "failed the preflight check", "(4 problems)")
    assert "utterance 'tiny3'" in out.err and "only 160 samples, fewer than the 400" in out.err
    assert not exp.exists()
    out = train(capsys, conf, exp, "--trainer.epochs", "1", "--trainer.preflight", "false")
    assert_clean_error(out, "utterance 'tiny", "has only 160 samples, fewer than the 400", "extraction refuses")


def test_preflight_lists_every_problem_and_leaves_no_exp_dir(tmp_path, capsys, corpus):
    data = bad_corpus(tmp_path, corpus, "slow", np.zeros(8000, np.float32), rate=8000)
    with open(os.path.join(data, "wav.scp"), "a") as f:
        f.write(f"gone {tmp_path}/gone.wav\n")
    with open(os.path.join(data, "utt2spk"), "a") as f:
        f.write("gone spk1\n")
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(data))
    exp = tmp_path / "exp"
    out = train(capsys, conf, exp, "--trainer.preflight", "true")
    assert_clean_error(out, "failed the preflight check", "(2 problems)")
    assert "'slow'" in out.err and "8000 Hz, expected 16000 Hz" in out.err and "'gone'" in out.err
    assert not exp.exists()
    # Off, the run starts and fails only when the bad utterance's batch is drawn.
    out = train(capsys, conf, exp, "--trainer.preflight", "false", "--trainer.epochs", "1")
    assert out.code == 2 and out.err.count("wesv: error:") == 1


def test_a_failed_start_in_an_existing_dir_removes_only_what_it_created(tmp_path, capsys):
    conf = tmp_path / "conf.yaml"
    conf.write_text(tiny_config(str(tmp_path / "no_such_data")))
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "notes.txt").write_text("mine")
    assert_clean_error(train(capsys, conf, exp), "no_such_data")
    assert sorted(os.listdir(exp)) == ["notes.txt"]
    assert_clean_error(train(capsys, conf, tmp_path / "new"), "no_such_data")
    assert not (tmp_path / "new").exists()


# ---- --init-from ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["checkpoint", "yaml"])
def test_init_from_a_checkpoint_or_a_config_says_give_an_encoder(tmp_path, capsys, finished, what):
    conf, src = finished
    path = src / "checkpoints" / "latest.pt" if what == "checkpoint" else conf
    out = train(capsys, conf, tmp_path / "exp", "--init-from", path)
    line = assert_clean_error(out, f"--init-from {path}", "give the encoder.pt an experiment exported")
    assert "weights_only" not in line and "Weights only" not in out.err
    assert not (tmp_path / "exp").exists()
