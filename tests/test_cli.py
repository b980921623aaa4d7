"""``wesv.cli.entry_point``: an OSError naming a file (full or read-only output location) is one line, exit 2."""
import errno
import os

import pytest

from badinput import assert_clean_error, run_entry, tree_digest
from wesv.cli import entry_point


@pytest.mark.parametrize("code, line", [
    (errno.ENOSPC, "cannot write /out/x.scp: No space left on device — free space or choose another output location"),
    (errno.EROFS, "cannot write /out/x.scp: Read-only file system — choose an output location on a writable"),
    (errno.EACCES, "cannot access /out/x.scp: Permission denied — check its permissions"),
    (errno.ENOENT, "cannot open /out/x.scp: No such file or directory — check the path"),
])
def test_os_errors_naming_a_file_are_one_line(capsys, code, line):
    @entry_point
    def main(argv=None):
        raise OSError(code, os.strerror(code), "/out/x.scp")

    with pytest.raises(SystemExit) as stop:
        main([])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"wesv: error: {line}")


def test_programming_errors_keep_their_traceback():
    @entry_point
    def main(argv=None):
        raise OSError("no errno, no file")

    with pytest.raises(OSError):
        main([])


def _trials_and_scores(tmp_path):
    (tmp_path / "trials").write_text("a b target\na c nontarget\nb c nontarget\nc a target\n")
    (tmp_path / "scores").write_text("a b 0.9\na c 0.1\nb c 0.3\nc a 0.2\n")


def _full_disk(monkeypatch, code):
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", replace)
    return real_replace


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_compute_metrics_and_score_on_a_full_or_read_only_disk(tmp_path, capsys, monkeypatch, code):
    import kaldiio
    import numpy as np

    _trials_and_scores(tmp_path)
    kaldiio.save_ark(str(tmp_path / "e.ark"), {u: np.random.default_rng(0).normal(size=4).astype(np.float32)
                                               for u in "abc"}, scp=str(tmp_path / "e.scp"))
    (tmp_path / "m.json").write_text("{}\n")
    before = tree_digest(str(tmp_path))
    _full_disk(monkeypatch, code)
    out = run_entry("compute_metrics", ["--trials", tmp_path / "trials", "--scores", tmp_path / "scores",
                                        "--json", tmp_path / "m.json"], capsys)
    assert_clean_error(out, "cannot write", str(tmp_path / "m.json"), os.strerror(code))
    out = run_entry("score", ["--trials", tmp_path / "trials", "--enroll-emb", tmp_path / "e.scp",
                              "--test-emb", tmp_path / "e.scp", "--out", tmp_path / "scores"], capsys)
    assert_clean_error(out, "cannot write", str(tmp_path / "scores"), os.strerror(code))
    assert {k: v for k, v in tree_digest(str(tmp_path)).items() if ".tmp" not in k} == before


def test_open_failing_on_the_output_is_one_line(tmp_path, capsys, monkeypatch):
    import builtins

    _trials_and_scores(tmp_path)
    real_open = builtins.open

    def fake_open(file, mode="r", *a, **k):
        if "w" in mode and str(file).startswith(str(tmp_path / "out")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    out = run_entry("compute_metrics", ["--trials", tmp_path / "trials", "--scores", tmp_path / "scores",
                                        "--json", tmp_path / "out" / "m.json"], capsys)
    assert_clean_error(out, "cannot write", str(tmp_path / "out" / "m.json"), "No space left on device")


@pytest.mark.parametrize("entry", ["make_corpus", "train"])
def test_make_corpus_and_train_on_a_full_disk(tmp_path, capsys, monkeypatch, entry):
    from trainer_helpers import make_tiny_corpus, tiny_config

    if entry == "train":
        data = make_tiny_corpus(str(tmp_path), num_speakers=2, utts_per_speaker=2)
        (tmp_path / "c.yaml").write_text(tiny_config(data))
        argv = ["--config", tmp_path / "c.yaml", "--exp-dir", tmp_path / "out"]
    else:
        argv = ["--out", tmp_path / "out", "--num-train-speakers", 1, "--utts-per-speaker", 1, "--num-test-speakers",
                2, "--test-utts-per-speaker", 2, "--min-dur", 0.5, "--max-dur", 0.6, "--no-augment-sets",
                "--num-workers", 1]
    _full_disk(monkeypatch, errno.ENOSPC)
    assert_clean_error(run_entry(entry, argv, capsys), "cannot write", str(tmp_path / "out"), "No space left")
