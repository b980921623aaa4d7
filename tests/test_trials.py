"""Trials files and VoxCeleb: lists to trials, trees to data dirs."""
import os

import numpy as np
import pytest
import soundfile as sf

from wesv.data.datadir import DataDir, read_scp
from wesv.data.trials import Trials, read_trial_columns, read_trials, scan_trials, write_trials
from wesv.data.validate import validate_data_dir
from wesv.data.voxceleb import (make_voxceleb1_data_dir, make_voxceleb2_data_dir, read_voxceleb_list,
                                voxceleb_list_to_trials, voxceleb_utt_id)
from wesv.errors import WesvError


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_trials_round_trip(tmp_path):
    t = Trials.from_lists(["a", "a", "c"], ["b", "c", "a"], [True, False, False])
    p = str(tmp_path / "trials")
    write_trials(p, t)
    assert open(p).read() == "a b target\na c nontarget\nc a nontarget\n"  # order kept, not sorted
    back = read_trials(p)
    assert back.enroll.tolist() == ["a", "a", "c"] and back.test.tolist() == ["b", "c", "a"]
    assert back.label.dtype == bool and back.label.tolist() == [True, False, False]
    assert len(back) == 3 and back.num_target == 1 and back.utts() == {"a", "b", "c"}
    assert back.subset(back.label).enroll.tolist() == ["a"]


def test_read_trials_errors_name_every_line(tmp_path):
    p = str(tmp_path / "trials")
    write(p, "a b target\na b 1\n\na b c target\n")
    with pytest.raises(WesvError) as err:
        read_trials(p)
    msg = str(err.value)
    assert f"{p}:2: label '1' is not 'target' or 'nontarget'" in msg
    assert f"{p}:3: blank line" in msg
    assert f"{p}:4: expected 3 fields" in msg and "(3 problems)" in msg
    trials, problems = scan_trials(p)
    assert len(trials) == 1 and len(problems) == 3


def test_read_trials_missing_and_empty(tmp_path):
    with pytest.raises(WesvError, match=r"nope: (cannot read trials|no such trials file)"):
        read_trials(str(tmp_path / "nope"))
    write(tmp_path / "empty", "")
    with pytest.raises(WesvError, match="empty"):
        read_trials(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------- VoxCeleb
VOX_LIST = ("1 id10270/5r0dWxy17C8/00001.wav id10270/x6uYqmx31kE/00001.wav\n"
            "0 id10270/5r0dWxy17C8/00001.wav id10300/ize_eiCFEg0/00003.wav\n")


def make_vox1_tree(root) -> None:
    for rel in ("id10270/5r0dWxy17C8/00001.wav", "id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav"):
        path = os.path.join(root, "wav", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, np.zeros(160, dtype=np.float32), 16000)


def test_voxceleb_utt_id():
    assert voxceleb_utt_id("id10270/5r0dWxy17C8/00001.wav") == "id10270-5r0dWxy17C8-00001"
    assert voxceleb_utt_id("id00012/21Uxsk56VDQ/00001.m4a") == "id00012-21Uxsk56VDQ-00001"


def test_voxceleb_list_to_trials(tmp_path):
    write(tmp_path / "veri_test2.txt", VOX_LIST)
    t = voxceleb_list_to_trials(str(tmp_path / "veri_test2.txt"), str(tmp_path / "trials"))
    assert open(tmp_path / "trials").read() == (
        "id10270-5r0dWxy17C8-00001 id10270-x6uYqmx31kE-00001 target\n"
        "id10270-5r0dWxy17C8-00001 id10300-ize_eiCFEg0-00003 nontarget\n")
    assert t.label.tolist() == [True, False]


def test_voxceleb_list_errors(tmp_path):
    write(tmp_path / "list.txt", "1 a/b/c.wav a/b/d.wav\nyes a/b/c.wav a/b/d.wav\n1 a/b/c.wav\n")
    with pytest.raises(WesvError) as err:
        read_voxceleb_list(str(tmp_path / "list.txt"))
    msg = str(err.value)
    assert f"{tmp_path}/list.txt:2: label 'yes' is not 1 (target) or 0 (nontarget)" in msg
    assert f"{tmp_path}/list.txt:3: expected 3 fields 'label enroll.wav test.wav', got 2" in msg


def test_voxceleb_list_missing_file(tmp_path):
    make_vox1_tree(tmp_path / "vox1")
    write(tmp_path / "list.txt", VOX_LIST + "1 id10270/5r0dWxy17C8/00001.wav id10999/gone/00001.wav\n")
    with pytest.raises(WesvError, match=r"list.txt:3: .*id10999/gone/00001.wav does not exist"):
        read_voxceleb_list(str(tmp_path / "list.txt"), audio_root=str(tmp_path / "vox1" / "wav"))


def test_make_voxceleb1_data_dir_with_trials(tmp_path):
    make_vox1_tree(tmp_path / "vox1")
    write(tmp_path / "veri_test2.txt", VOX_LIST)
    os.makedirs(tmp_path / "vox1" / "wav" / "stray_dir")  # not <spk>/<video>/<n>.wav: ignored
    data = make_voxceleb1_data_dir(str(tmp_path / "vox1"), str(tmp_path / "data"),
                                   trials_list=str(tmp_path / "veri_test2.txt"))
    assert data.utts == ["id10270-5r0dWxy17C8-00001", "id10270-x6uYqmx31kE-00001", "id10300-ize_eiCFEg0-00003"]
    assert data.utt2spk["id10300-ize_eiCFEg0-00003"] == "id10300"
    assert data.wav_scp["id10270-5r0dWxy17C8-00001"] == str(tmp_path / "vox1/wav/id10270/5r0dWxy17C8/00001.wav")
    assert validate_data_dir(str(tmp_path / "data")).num_trials == 2
    # A list naming an utterance the data dir lacks is refused.
    write(tmp_path / "other.txt", "1 id10270/5r0dWxy17C8/00001.wav id10270/5r0dWxy17C8/00009.wav\n")
    with pytest.raises(WesvError, match="not in .*wav.scp, e.g. 'id10270-5r0dWxy17C8-00009'"):
        voxceleb_list_to_trials(str(tmp_path / "other.txt"), str(tmp_path / "t"), data_dir=str(tmp_path / "data"))


def test_make_voxceleb1_data_dir_errors(tmp_path):
    os.makedirs(tmp_path / "empty" / "wav")
    with pytest.raises(WesvError, match="no <spk>/<video>/<n>.wav files found"):
        make_voxceleb1_data_dir(str(tmp_path / "empty"), str(tmp_path / "d"))


def test_make_voxceleb2_data_dir(tmp_path):
    aac = tmp_path / "vox2" / "dev" / "aac"
    for rel in ("id00012/21Uxsk56VDQ/00001.m4a", "id00012/21Uxsk56VDQ/00002.m4a", "id00015/0fijmz4vTVU/00001.m4a"):
        write(aac / rel, "not really aac")
    sf.write(str(aac / "id00012/21Uxsk56VDQ/00002.wav"), np.zeros(160, dtype=np.float32), 16000)
    data = make_voxceleb2_data_dir(str(tmp_path / "vox2"), str(tmp_path / "data"))
    assert data.utts == ["id00012-21Uxsk56VDQ-00001", "id00012-21Uxsk56VDQ-00002", "id00015-0fijmz4vTVU-00001"]
    assert data.wav_scp["id00012-21Uxsk56VDQ-00001"] == (
        f"ffmpeg -nostdin -loglevel error -i {aac}/id00012/21Uxsk56VDQ/00001.m4a -ac 1 -ar 16000 -f wav - |")
    assert data.wav_scp["id00012-21Uxsk56VDQ-00002"] == str(aac / "id00012/21Uxsk56VDQ/00002.wav")
    assert data.spk2utt == {"id00012": ["id00012-21Uxsk56VDQ-00001", "id00012-21Uxsk56VDQ-00002"],
                            "id00015": ["id00015-0fijmz4vTVU-00001"]}
    assert read_scp(str(tmp_path / "data" / "wav.scp")) == data.wav_scp
    validate_data_dir(str(tmp_path / "data"))
    with pytest.raises(WesvError, match="VoxCeleb2 root"):
        make_voxceleb2_data_dir(str(tmp_path / "nothing"), str(tmp_path / "d2"))
    assert isinstance(DataDir.load(str(tmp_path / "data")), DataDir)


# ------------------------------------------------------------------------------------------- fast path
def test_clean_and_unusual_layouts_read_the_same(tmp_path):
    """The vectorised parser (clean ASCII) and the per-line one (tabs, CRLF, no final newline, UTF-8) agree."""
    expect = (["a", "a", "c"], ["b", "c", "a"], [True, False, False])
    layouts = {"clean": "a b target\na c nontarget\nc a nontarget\n",
               "tabs_no_final_newline": "a\tb target\na c\tnontarget\nc a nontarget",
               "crlf": "a b target\r\na c nontarget\r\nc a nontarget\r\n",
               "spaces": "a  b target\n a c nontarget\nc a nontarget  \n"}
    for name, text in layouts.items():
        write(tmp_path / name, text)
        t = read_trials(str(tmp_path / name))
        assert (t.enroll.tolist(), t.test.tolist(), t.label.tolist()) == expect, name
        e, te, lab = read_trial_columns(str(tmp_path / name))
        assert e.dtype.kind == "S" and [x.decode() for x in e.tolist()] == expect[0], name
        assert [x.decode() for x in te.tolist()] == expect[1] and lab.tolist() == expect[2], name
    write(tmp_path / "long", f"{'x' * 5000} b target\n")  # beyond the fast path's field limit
    assert read_trial_columns(str(tmp_path / "long"))[0].tolist() == [b"x" * 5000]
    write(tmp_path / "utf8", "é b target\n")
    assert read_trials(str(tmp_path / "utf8")).enroll.tolist() == ["é"]
    assert read_trial_columns(str(tmp_path / "utf8"))[0].tolist() == ["é".encode()]


def test_fields_shifted_between_lines_are_caught(tmp_path):
    """A 4-field line then a 2-field one keep every third word a label; still an error naming both lines."""
    p = str(tmp_path / "trials")
    write(p, "a b target x\nc nontarget\nd e target\n")
    for reader in (read_trials, read_trial_columns):
        with pytest.raises(WesvError) as err:
            reader(p)
        assert f"{p}:1: expected 3 fields" in str(err.value) and f"{p}:2: expected 3 fields" in str(err.value)
        assert "(2 problems)" in str(err.value)


def test_large_clean_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"spk{i // 7:03d}-utt{i:05d}" for i in range(500)]
    e = [ids[i] for i in rng.integers(0, 500, 3000)]
    t = [ids[i] for i in rng.integers(0, 500, 3000)]
    lab = (rng.random(3000) < 0.3).tolist()
    write_trials(str(tmp_path / "trials"), Trials.from_lists(e, t, lab))
    back = read_trials(str(tmp_path / "trials"))
    assert back.enroll.tolist() == e and back.test.tolist() == t and back.label.tolist() == lab
    assert back.enroll.dtype == object
