"""The data-dir tools from the shell: tools/*.sh wrappers around python -m wesv.bin.*."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from wesv.data.datadir import DataDir, read_scp, read_spk2utt
from wesv.data.validate import validate_data_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(name, *args, stdin=None):
    """Run tools/<name>.sh with this interpreter; return the completed process."""
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", os.path.join(ROOT, "tools", f"{name}.sh"), *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


@pytest.fixture
def data(tmp_path):
    """A small valid data dir with real audio (4 speakers x 3 utterances) and trials."""
    d = tmp_path / "data"
    (d / "wav").mkdir(parents=True)
    wav, u2s = [], []
    for s in range(4):
        for u in range(3):
            utt = f"s{s}-u{u}"
            path = d / "wav" / f"{utt}.wav"
            sf.write(str(path), np.zeros(1600, dtype=np.float32), 16000)
            wav.append(f"{utt} {path}\n")
            u2s.append(f"{utt} s{s}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    (d / "spk2utt").write_text("".join(f"s{s} s{s}-u0 s{s}-u1 s{s}-u2\n" for s in range(4)))
    (d / "trials").write_text("s0-u0 s0-u1 target\ns0-u0 s1-u0 nontarget\ns2-u2 s3-u0 nontarget\n")
    return d


def test_validate_ok_and_failure(data):
    r = tool("validate_data_dir", data, "--check-audio", "--sample-rate", 16000)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"{data}: OK — 12 utterances, 4 speakers, 3 trials (1 target), 12 audio files read "
                                "and accepted")
    (data / "wav" / "s1-u1.wav").unlink()
    with open(data / "trials", "a") as f:
        f.write("s0-u0 ghost target\n")
    r = tool("validate_data_dir", data, "--check-audio")
    assert r.returncode == 2
    assert r.stderr.startswith(f"wesv: error: data dir {data} is not valid (2 problems)")
    assert f"{data}/trials:4: test utterance 'ghost' is not in wav.scp" in r.stderr
    assert f"{data}/wav.scp:5: utterance 's1-u1'" in r.stderr and "no such file" in r.stderr
    r = tool("validate_data_dir", data, "--no-trials")
    assert r.returncode == 0 and "trials" not in r.stdout


def test_fix_data_dir_from_shell(data):
    lines = (data / "wav.scp").read_text().splitlines()
    (data / "wav.scp").write_text("\n".join(reversed(lines[1:])) + "\n")  # drop s0-u0, reverse the order
    assert tool("validate_data_dir", data).returncode == 2
    r = tool("fix_data_dir", data)
    assert r.returncode == 0, r.stderr
    assert "kept 11 utterances, removed 1 (1 not in wav.scp)" in r.stderr
    assert (data / ".backup" / "wav.scp").read_text().startswith("s3-u2 ")
    assert (data / ".backup" / "removed_utts").read_text() == "s0-u0 not_in_wav.scp\n"
    assert tool("validate_data_dir", data).returncode == 0
    assert read_spk2utt(str(data / "spk2utt"))["s0"] == ["s0-u1", "s0-u2"]
    assert (data / "trials").read_text() == "s2-u2 s3-u0 nontarget\n"  # trials naming s0-u0 dropped


def test_subset_data_dir_from_shell(data, tmp_path):
    r = tool("subset_data_dir", data, tmp_path / "first", "--first", 4)
    assert r.returncode == 0, r.stderr
    assert DataDir.load(str(tmp_path / "first")).utts == ["s0-u0", "s0-u1", "s0-u2", "s1-u0"]
    (tmp_path / "spks").write_text("s1\ns3\n")
    assert tool("subset_data_dir", data, tmp_path / "spk", "--spk-list", tmp_path / "spks").returncode == 0
    assert set(DataDir.load(str(tmp_path / "spk")).spk2utt) == {"s1", "s3"}
    assert tool("subset_data_dir", data, tmp_path / "r", "--random", 5, "--seed", 7).returncode == 0
    assert len(DataDir.load(str(tmp_path / "r")).utts) == 5
    validate_data_dir(str(tmp_path / "r"))
    r = tool("subset_data_dir", data, tmp_path / "x", "--first", 2, "--random", 2)
    assert r.returncode == 2 and "not allowed with argument" in r.stderr  # argparse: one selector only
    r = tool("subset_data_dir", data, tmp_path / "x", "--random", 99)
    assert r.returncode == 2 and "wesv: error: --random 99: choose between 1 and 12" in r.stderr


def test_split_data_dir_from_shell(data):
    r = tool("split_data_dir", data, 5)
    assert r.returncode == 0, r.stderr
    parts = [DataDir.load(str(data / "split5" / str(j))).utts for j in range(1, 6)]
    assert [len(p) for p in parts] == [3, 3, 2, 2, 2]
    assert sum(parts, []) == list(read_scp(str(data / "wav.scp")))
    r = tool("split_data_dir", data, 13)
    assert r.returncode == 2 and "cannot split 12 lines into 13 jobs" in r.stderr


def test_utt2spk_to_spk2utt_from_shell(data, tmp_path):
    r = tool("utt2spk_to_spk2utt", data / "utt2spk")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (data / "spk2utt").read_text()
    r = tool("utt2spk_to_spk2utt", stdin="b s2\na s1\nc s1\n")
    assert r.stdout == "s1 a c\ns2 b\n"
    assert tool("utt2spk_to_spk2utt", data / "utt2spk", "--out", tmp_path / "s2u").returncode == 0
    assert (tmp_path / "s2u").read_text() == (data / "spk2utt").read_text()
    r = tool("utt2spk_to_spk2utt", stdin="a s1 extra\n")
    assert r.returncode == 2 and "expected 2 whitespace-separated fields, got 3" in r.stderr
