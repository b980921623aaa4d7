"""VoxCeleb preparation on a miniature VoxCeleb tree built from the embedded corpus (tools/make_mini_voxceleb.py)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from wesv.bin import prepare_voxceleb
from wesv.corpus import make_corpus
from wesv.data.datadir import DataDir, read_scp
from wesv.data.trials import read_trials
from wesv.data.validate import validate_data_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_MINI = os.path.join(ROOT, "tools", "make_mini_voxceleb.py")


@pytest.fixture(scope="module")
def mini_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("minivox")
    make_corpus(str(base / "corpus"), 0, num_train_speakers=3, utts_per_speaker=3, num_test_speakers=3,
                test_utts_per_speaker=3, min_dur=0.5, max_dur=0.8, augment_sets=False, channel=False, num_workers=1)
    subprocess.run([sys.executable, MAKE_MINI, "--corpus", str(base / "corpus"), "--out", str(base / "tree")],
                   check=True)
    return base


def corpus_to_tree(base) -> dict[str, str]:
    """corpus utterance -> the VoxCeleb utterance id it became (spk-video-n)."""
    out = {}
    for line in open(base / "tree" / "mapping.tsv"):
        utt, rel = line.split()
        out[utt] = "-".join(rel.split("/")[-3:])[: -len(".wav")]
    return out


def test_mini_tree_layout(mini_tree):
    tree = mini_tree / "tree"
    vox1 = sorted(p.relative_to(tree / "voxceleb1" / "wav").as_posix() for p in (tree / "voxceleb1").rglob("*.wav"))
    vox2 = sorted((tree / "voxceleb2" / "dev" / "aac").rglob("*.wav"))
    assert len(vox1) == 9 and len(vox2) == 9
    spk, video, name = vox1[0].split("/")
    assert spk == "id10001" and len(video) == 11 and name in ("00001.wav", "00002.wav")
    assert {p.parent.parent.name for p in vox2} == {"id00001", "id00002", "id00003"}
    first = (tree / "voxceleb1" / "veri_test2.txt").read_text().splitlines()[0].split()
    assert first[0] in ("0", "1") and first[1].startswith("id1") and first[1].endswith(".wav")


def test_prepare_vox1_data_dir_and_trials(mini_tree, tmp_path):
    out = tmp_path / "vox1"
    with pytest.raises(SystemExit) as e:
        prepare_voxceleb.main(["--vox1-dir", str(mini_tree / "tree" / "voxceleb1"), "--out", str(out)])
    assert e.value.code == 0
    summary = validate_data_dir(str(out))
    assert summary.num_utts == 9 and summary.num_speakers == 3
    to_vox = corpus_to_tree(mini_tree)
    corpus = read_trials(str(mini_tree / "corpus" / "test" / "trials"))
    o, e_, h = (read_trials(str(out / f"trials_{n}")) for n in "OEH")
    assert list(o.enroll) == [to_vox[u] for u in corpus.enroll] and list(o.test) == [to_vox[u] for u in corpus.test]
    assert np.array_equal(o.label, corpus.label) and o.num_target == corpus.num_target > 0
    assert list(e_.enroll) == list(o.test) and list(e_.test) == list(o.enroll)  # the E list swaps the sides
    assert len(h) == (len(o) + 1) // 2 and list(h.enroll) == list(o.enroll[::2])
    assert os.readlink(out / "trials") == "trials_O"
    data = DataDir.load(str(out))
    assert data.trials is not None
    assert all(data.utt2spk[u] == u.split("-")[0] for u in data.utts)
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in data.wav_scp.values())


def test_prepare_vox1_without_lists_writes_no_trials(mini_tree, tmp_path):
    vox1 = tmp_path / "v1"
    vox1.mkdir()
    os.symlink(mini_tree / "tree" / "voxceleb1" / "wav", vox1 / "wav")
    written = prepare_voxceleb.prepare_vox1(str(vox1), str(tmp_path / "out"))
    assert written == [] and not os.path.lexists(tmp_path / "out" / "trials")
    assert validate_data_dir(str(tmp_path / "out")).num_utts == 9


def test_prepare_vox2_on_the_mini_tree(mini_tree, tmp_path):
    out = tmp_path / "vox2_dev"
    with pytest.raises(SystemExit) as e:
        prepare_voxceleb.main(["--vox2-dir", str(mini_tree / "tree" / "voxceleb2"), "--out", str(out)])
    assert e.value.code == 0
    summary = validate_data_dir(str(out))
    assert summary.num_utts == 9 and summary.num_speakers == 3
    # The dev dir itself is accepted too, with the same result.
    prepare_voxceleb.prepare_vox2(str(mini_tree / "tree" / "voxceleb2" / "dev"), str(tmp_path / "again"))
    assert (tmp_path / "again" / "wav.scp").read_text() == (out / "wav.scp").read_text()


def test_vox2_m4a_become_ffmpeg_pipes(tmp_path):
    for spk, video, n in [("id00012", "abcdefghijk", 1), ("id00012", "abcdefghijk", 2), ("id00034", "ZZZZZZZZZZZ", 1)]:
        d = tmp_path / "vox2" / "dev" / "aac" / spk / video
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{n:05d}.m4a").write_bytes(b"")  # never decoded here: only the wav.scp strings are checked
    prepare_voxceleb.prepare_vox2(str(tmp_path / "vox2"), str(tmp_path / "out"))
    wav = read_scp(str(tmp_path / "out" / "wav.scp"))
    assert list(wav) == ["id00012-abcdefghijk-00001", "id00012-abcdefghijk-00002", "id00034-ZZZZZZZZZZZ-00001"]
    pipe = wav["id00034-ZZZZZZZZZZZ-00001"].split()
    m4a = str(tmp_path / "vox2" / "dev" / "aac" / "id00034" / "ZZZZZZZZZZZ" / "00001.m4a")
    assert pipe[:4] == ["ffmpeg", "-nostdin", "-loglevel", "error"] and pipe[-2:] == ["-", "|"]
    assert pipe[pipe.index("-i") + 1] == m4a
    assert pipe[pipe.index("-ar") + 1] == "16000" and pipe[pipe.index("-ac") + 1] == "1"
    assert pipe[pipe.index("-f") + 1] == "wav"
    validate_data_dir(str(tmp_path / "out"))


@pytest.mark.parametrize("flag", ["--vox1-dir", "--vox2-dir"])
def test_missing_or_empty_tree_is_a_clear_error(tmp_path, flag):
    def run(src):
        return subprocess.run([sys.executable, "-m", "wesv.bin.prepare_voxceleb", flag, str(src), "--out",
                               str(tmp_path / "out")], capture_output=True, text=True)

    missing = run(tmp_path / "nowhere")
    assert missing.returncode == 2 and "nowhere: no such directory" in missing.stderr
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    (tmp_path / "empty" / "dev" / "aac").mkdir(parents=True)
    empty = run(tmp_path / "empty")
    assert empty.returncode == 2 and "no <spk>/<video>/<n>" in empty.stderr
    assert "Traceback" not in missing.stderr + empty.stderr


def test_make_mini_voxceleb_rejects_a_non_corpus(tmp_path):
    (tmp_path / "c").mkdir()
    r = subprocess.run([sys.executable, MAKE_MINI, "--corpus", str(tmp_path / "c"), "--out", str(tmp_path / "t")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "wav.scp: missing" in r.stderr


def test_voxceleb_recipe_stage1_on_the_mini_tree_and_markers(mini_tree, tmp_path):
    # The recipe as a user copies it: egs/voxceleb next to a tools/ link.
    os.symlink(os.path.join(ROOT, "tools"), tmp_path / "tools")
    d = shutil.copytree(os.path.join(ROOT, "egs", "voxceleb"), tmp_path / "egs" / "voxceleb", symlinks=True,
                        ignore=shutil.ignore_patterns("exp", "data"))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    tree = mini_tree / "tree"
    args = ["bash", "run.sh", "--stage", "1", "--stop_stage", "1", "--vox1_dir", str(tree / "voxceleb1"),
            "--vox2_dir", str(tree / "voxceleb2")]

    def run(*extra):
        return subprocess.run(args + list(extra), cwd=d, env=env, capture_output=True, text=True, timeout=120)

    r = run()
    assert r.returncode == 0, r.stderr
    for name in ("trials_O", "trials_E", "trials_H", "trials"):
        assert (d / "data" / "vox1" / name).is_file()
    validate_data_dir(str(d / "data" / "vox1"))
    assert validate_data_dir(str(d / "data" / "vox2_dev")).num_utts == 9
    assert (d / "exp" / ".done" / "stage_1").read_text().strip().isdigit()
    (d / "data" / "vox1" / "wav.scp").unlink()
    r = run()  # the marker is there: the stage is skipped and nothing is rewritten
    assert r.returncode == 0 and "skipping" in r.stderr and not (d / "data" / "vox1" / "wav.scp").exists()
    r = run("--force", "true")
    assert r.returncode == 0 and (d / "data" / "vox1" / "wav.scp").is_file()
    r = run("--force", "true", "--vox1_dir", str(tmp_path / "missing"))
    assert r.returncode != 0 and "missing: no such directory" in r.stderr
