"""Data dirs: read/write round trips, every validation error (with file:line), fix/subset/split, split_scp.pl rule."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from wesv.data.datadir import (DataDir, c_sorted, read_scp, read_spk2utt, read_utt2spk, shard, split_indices,
                               utt2spk_to_spk2utt, write_scp)
from wesv.data.datadir_ops import fix_data_dir, split_data_dir, subset_data_dir
from wesv.data.validate import validate_data_dir
from wesv.errors import WesvError

WAV = {f"spk{s}-utt{u}": f"/data/spk{s}/utt{u}.wav" for s in (1, 2, 3) for u in (1, 2)}
U2S = {u: u.split("-")[0] for u in WAV}


def make_dir(path, wav=WAV, utt2spk=U2S, trials=True) -> str:
    """A valid data dir: 3 speakers x 2 utterances, plus trials."""
    os.makedirs(path, exist_ok=True)
    write_scp(os.path.join(path, "wav.scp"), wav)
    if utt2spk is not None:
        write_scp(os.path.join(path, "utt2spk"), utt2spk)
        write_scp(os.path.join(path, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
    if trials:
        with open(os.path.join(path, "trials"), "w") as f:
            f.write("spk1-utt1 spk1-utt2 target\nspk1-utt1 spk2-utt1 nontarget\nspk3-utt1 spk2-utt2 nontarget\n")
    return str(path)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def problems_of(path, **kw) -> str:
    with pytest.raises(WesvError) as err:
        validate_data_dir(str(path), **kw)
    return str(err.value)


# ------------------------------------------------------------------------------------------- read / write
def test_round_trip_sorted_and_atomic(tmp_path):
    mapping = {"b": "/x/b.wav", "B": "/x/B.wav", "a-1": "sox a.flac -t wav - |", "a": "a.ark:17", "é": "/e.wav"}
    p = str(tmp_path / "wav.scp")
    write_scp(p, mapping)
    lines = open(p).read().splitlines()
    # LC_ALL=C order: uppercase before lowercase, '-' (0x2d) before letters, UTF-8 bytes last.
    assert [line.split()[0] for line in lines] == ["B", "a", "a-1", "b", "é"]
    assert read_scp(p) == {k: mapping[k] for k in ["B", "a", "a-1", "b", "é"]}
    assert read_scp(p)["a-1"] == "sox a.flac -t wav - |"  # the rest of the line, internal spaces kept
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    if shutil.which("sort"):
        c_sort = subprocess.run(["sort", "-k1,1"], input=open(p, "rb").read(), capture_output=True,
                                env={"LC_ALL": "C"}).stdout.decode().splitlines()
        assert c_sort == lines


def test_c_sorted_matches_byte_order():
    keys = ["a_b", "a-b", "aB", "ab", "a b".replace(" ", "."), "Z9", "z", "ü", "a0"]
    assert c_sorted(keys) == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_utt2spk_spk2utt_and_datadir_load(tmp_path):
    d = make_dir(tmp_path / "d")
    assert read_utt2spk(os.path.join(d, "utt2spk")) == U2S
    spk2utt = read_spk2utt(os.path.join(d, "spk2utt"))
    assert spk2utt == {"spk1": ["spk1-utt1", "spk1-utt2"], "spk2": ["spk2-utt1", "spk2-utt2"],
                       "spk3": ["spk3-utt1", "spk3-utt2"]}
    data = DataDir.load(d)
    assert data.utts == c_sorted(WAV) and data.num_speakers == 3
    assert data.trials == os.path.join(d, "trials")
    data.save(str(tmp_path / "copy"))
    assert DataDir.load(str(tmp_path / "copy")).spk2utt == spk2utt


def test_unlabelled_dir_loads_and_validates(tmp_path):
    d = make_dir(tmp_path / "d", utt2spk=None, trials=False)
    data = DataDir.load(d)
    assert data.utt2spk is None and data.spk2utt is None
    summary = validate_data_dir(d)
    assert summary.num_utts == 6 and summary.num_speakers is None


def test_read_scp_rejects_duplicates_with_line(tmp_path):
    p = tmp_path / "wav.scp"
    write(p, "a /a.wav\nb /b.wav\na /a2.wav\n")
    with pytest.raises(WesvError, match=r"wav.scp:3: duplicate key 'a' \(first on line 1\)"):
        read_scp(str(p))


def test_datadir_missing_wav_scp(tmp_path):
    os.makedirs(tmp_path / "d")
    with pytest.raises(WesvError, match="wav.scp: missing"):
        DataDir.load(str(tmp_path / "d"))


# ------------------------------------------------------------------------------------------- validation
def test_valid_dir_summary(tmp_path):
    s = validate_data_dir(make_dir(tmp_path / "d"))
    assert (s.num_utts, s.num_speakers, s.num_trials, s.num_target) == (6, 3, 3, 1)
    assert "OK — 6 utterances, 3 speakers, 3 trials (1 target)" in str(s)


def test_missing_wav_scp(tmp_path):
    d = make_dir(tmp_path / "d")
    os.remove(os.path.join(d, "wav.scp"))
    assert "wav.scp: missing — every data dir needs wav.scp" in problems_of(d)


def test_duplicate_key(tmp_path):
    d = make_dir(tmp_path / "d")
    write(os.path.join(d, "utt2spk"), open(os.path.join(d, "utt2spk")).read() + "spk3-utt2 spk3\n")
    msg = problems_of(d)
    assert f"{d}/utt2spk:7: duplicate key 'spk3-utt2' (first on line 6)" in msg
    assert f"run tools/fix_data_dir.sh {d}" in msg


def test_unsorted_keys(tmp_path):
    d = make_dir(tmp_path / "d")
    write(os.path.join(d, "wav.scp"), "spk1-utt2 /x2.wav\nspk1-utt1 /x1.wav\n" +
          "".join(f"{k} {v}\n" for k, v in sorted(WAV.items())[2:]))
    msg = problems_of(d)
    assert f"{d}/wav.scp:2: key 'spk1-utt1' is out of order (after 'spk1-utt2' on line 1)" in msg
    assert "LC_ALL=C sort" in msg


def test_key_mismatch_between_utt2spk_and_wav_scp(tmp_path):
    wav = dict(WAV)
    del wav["spk2-utt1"]
    d = make_dir(tmp_path / "d", wav=wav, trials=False)
    u2s = dict(U2S)
    del u2s["spk3-utt2"]
    write_scp(os.path.join(d, "utt2spk"), u2s)
    write_scp(os.path.join(d, "spk2utt"), utt2spk_to_spk2utt(u2s))
    msg = problems_of(d)
    assert f"{d}/utt2spk:3: utterance 'spk2-utt1' has no line in wav.scp" in msg
    assert f"{d}/wav.scp:5: utterance 'spk3-utt2' has no speaker in utt2spk" in msg


def test_spk2utt_inconsistent(tmp_path):
    d = make_dir(tmp_path / "d", trials=False)
    write(os.path.join(d, "spk2utt"), "spk1 spk1-utt1 spk2-utt1\nspk2 spk2-utt2\nspk9 spk1-utt2\n")
    msg = problems_of(d)
    assert f"{d}/spk2utt:1: speaker 'spk1' lists 'spk2-utt1' which utt2spk does not give" in msg
    assert "lacks 'spk1-utt2'" in msg
    assert f"{d}/spk2utt:2: speaker 'spk2' lacks 'spk2-utt1'" in msg
    assert f"{d}/spk2utt:3: speaker 'spk9' has no utterance in utt2spk" in msg
    assert f"{d}/spk2utt: speaker 'spk3' (utt2spk line 5) is missing" in msg
    assert "utt2spk_to_spk2utt.sh" in msg


def test_empty_file(tmp_path):
    d = make_dir(tmp_path / "d")
    write(os.path.join(d, "utt2spk"), "")
    assert f"{d}/utt2spk: empty file" in problems_of(d)


def test_wrong_column_counts(tmp_path):
    d = make_dir(tmp_path / "d")
    lines = open(os.path.join(d, "utt2spk")).read().splitlines()
    lines[1] += " extra"
    lines[3] = lines[3].split()[0]
    write(os.path.join(d, "utt2spk"), "\n".join(lines) + "\n")
    write(os.path.join(d, "wav.scp"), open(os.path.join(d, "wav.scp")).read().replace("spk3-utt1 /data/spk3/utt1.wav",
                                                                                      "spk3-utt1"))
    msg = problems_of(d)
    assert f"{d}/utt2spk:2: expected 2 whitespace-separated fields, got 3" in msg
    assert f"{d}/utt2spk:4: expected 2 whitespace-separated fields, got 1" in msg
    assert f"{d}/wav.scp:5: expected at least 2 whitespace-separated fields, got 1" in msg


def test_blank_line(tmp_path):
    d = make_dir(tmp_path / "d")
    text = open(os.path.join(d, "wav.scp")).read().splitlines()
    write(os.path.join(d, "wav.scp"), "\n".join(text[:2] + [""] + text[2:]) + "\n")
    assert f"{d}/wav.scp:3: blank line" in problems_of(d)


def test_wav_value_with_spaces_but_no_pipe(tmp_path):
    wav = dict(WAV)
    wav["spk1-utt2"] = "sox in.flac -t wav -"
    d = make_dir(tmp_path / "d", wav=wav)
    assert f"{d}/wav.scp:2: value 'sox in.flac -t wav -' has spaces but is not a pipe ending in '|'" in problems_of(d)


def test_trials_unknown_utt_and_bad_label(tmp_path):
    d = make_dir(tmp_path / "d")
    write(os.path.join(d, "trials"), "spk1-utt1 spk1-utt2 target\nspk1-utt1 ghost nontarget\n"
                                      "spk2-utt1 spk3-utt1 impostor\nspk1-utt1 spk2-utt1\n")
    msg = problems_of(d)
    assert f"{d}/trials:2: test utterance 'ghost' is not in wav.scp" in msg
    assert f"{d}/trials:3: label 'impostor' is not 'target' or 'nontarget'" in msg
    assert f"{d}/trials:4: expected 3 fields" in msg
    # --no-trials skips them
    assert validate_data_dir(d, check_trials=False).num_trials is None


def test_all_problems_collected_in_one_error(tmp_path):
    d = make_dir(tmp_path / "d")
    write(os.path.join(d, "utt2spk"), open(os.path.join(d, "utt2spk")).read() + "\nzz\n")
    write(os.path.join(d, "trials"), "a b c\n")
    msg = problems_of(d)
    assert msg.startswith(f"data dir {d} is not valid (")
    for part in ("utt2spk:7: blank line", "utt2spk:8: expected 2", "trials:1: label 'c'", "enroll utterance 'a'"):
        assert part in msg


def test_mismatch_messages_are_capped(tmp_path):
    wav = {f"u{i:04d}": f"/x/{i}.wav" for i in range(200)}
    d = make_dir(tmp_path / "d", wav=wav, utt2spk={"u0000": "s"}, trials=False)
    msg = problems_of(d)
    assert msg.count("has no speaker in utt2spk") == 20
    assert "... 179 more wav.scp utterances missing from utt2spk" in msg


def test_check_audio(tmp_path):
    import soundfile as sf

    good = str(tmp_path / "good.wav")
    sf.write(good, np.zeros(1600, dtype=np.float32), 16000)
    slow = str(tmp_path / "slow.wav")
    sf.write(slow, np.zeros(800, dtype=np.float32), 8000)
    d = make_dir(tmp_path / "d", wav={"a": good, "b": str(tmp_path / "nope.wav"), "c": slow, "d": f"cat {good} |"},
                 utt2spk=None, trials=False)
    assert validate_data_dir(d).num_utts == 4  # audio not opened by default
    msg = problems_of(d, check_audio=True, sample_rate=16000)
    assert f"{d}/wav.scp:2: utterance 'b'" in msg and "no such file" in msg
    assert f"{d}/wav.scp:3: utterance 'c' ('{slow}'): sample rate is 8000 Hz, expected 16000 Hz" in msg
    assert "wav.scp:1" not in msg and "wav.scp:4" not in msg


def test_check_audio_applies_the_rule_of_extraction(tmp_path):
    """Files extraction refuses (NaN/inf, 0.01 s, cut short) fail --check-audio too; the summary counts files."""
    import soundfile as sf

    good = str(tmp_path / "good.wav")
    sf.write(good, np.zeros(1600, dtype=np.float32), 16000)
    nan = str(tmp_path / "nan.wav")
    sf.write(nan, np.array([0.0, np.nan] * 800, dtype=np.float32), 16000, subtype="FLOAT")
    short = str(tmp_path / "short.wav")
    sf.write(short, np.zeros(160, dtype=np.float32), 16000)
    cut = str(tmp_path / "cut.wav")
    sf.write(cut, np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    with open(cut, "r+b") as f:
        f.truncate(20000)
    d = make_dir(tmp_path / "d", wav={"a": good, "b": nan, "c": short, "d": cut}, utt2spk=None, trials=False)
    msg = problems_of(d, check_audio=True)
    assert "wav.scp:2: utterance 'b'" in msg and "NaN/inf samples" in msg
    assert "wav.scp:3: utterance 'c'" in msg and "only 160 samples, at least 400" in msg
    assert "wav.scp:4: utterance 'd'" in msg and "truncated wav" in msg and "--allow-truncated" in msg
    assert "wav.scp:1" not in msg
    ok = make_dir(tmp_path / "ok", wav={"a": good, "d": cut}, utt2spk=None, trials=False)
    summary = validate_data_dir(ok, check_audio=True, allow_truncated=True)
    assert summary.num_audio_read == 2 and "2 audio files read" in str(summary)


# ------------------------------------------------------------------------------------------- split rule
def split_scp_pl(n: int, num_jobs: int) -> list[list[int]]:
    """Kaldi split_scp.pl restated line by line: linesperscp = int(n/N); remainder to the first outputs."""
    lines = list(range(n))
    per = n // num_jobs
    remainder = n - per * num_jobs
    out, pos = [], 0
    for idx in range(num_jobs):
        chunk = []
        for _ in range(per + (1 if idx < remainder else 0)):
            chunk.append(lines[pos])
            pos += 1
        out.append(chunk)
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 11, 64, 99, 100, 1001])
def test_split_indices_matches_split_scp_rule(n):
    for num_jobs in range(1, min(n, 40) + 1):
        got = [list(range(s, e)) for s, e in split_indices(n, num_jobs)]
        assert got == split_scp_pl(n, num_jobs), (n, num_jobs)


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl not installed")
def test_split_indices_matches_perl(tmp_path):
    # The core loop of Kaldi's split_scp.pl, run by perl on a real scp.
    script = r'''
    my $n_out = shift @ARGV; my @F = <STDIN>; my $numlines = @F;
    my $linesperscp = int($numlines / $n_out); my $remainder = $numlines - ($linesperscp * $n_out);
    my $n = 0;
    for (my $scpidx = 0; $scpidx < $n_out; $scpidx++) {
      for (my $k = 0; $k < $linesperscp + ($scpidx < $remainder ? 1 : 0); $k++) { print "$scpidx $F[$n++]"; }
    }'''
    for n, num_jobs in [(10, 3), (23, 7), (50, 50), (101, 4)]:
        scp = "".join(f"utt{i:04d} /x/{i}.wav\n" for i in range(n))
        out = subprocess.run(["perl", "-e", script, str(num_jobs)], input=scp, capture_output=True, text=True,
                             check=True).stdout.splitlines()
        mapping = read_scp_text(scp)
        for job in range(1, num_jobs + 1):
            expect = [line.split()[1] for line in out if int(line.split()[0]) == job - 1]
            assert list(shard(mapping, job, num_jobs)) == expect


def read_scp_text(text):
    return {line.split()[0]: line.split(None, 1)[1] for line in text.splitlines()}


def test_shard_dict_and_list_and_errors():
    m = {f"u{i}": i for i in range(7)}
    assert shard(m, 1, 3) == {"u0": 0, "u1": 1, "u2": 2}
    assert shard(list(range(7)), 3, 3) == [5, 6]
    with pytest.raises(WesvError, match="jobs are numbered from 1"):
        shard(m, 0, 3)
    with pytest.raises(WesvError, match="use at most 7 jobs"):
        split_indices(7, 8)
    with pytest.raises(WesvError, match="empty"):
        split_indices(0, 1)


# ------------------------------------------------------------------------------------------- tools
def test_fix_data_dir(tmp_path):
    d = str(tmp_path / "d")
    os.makedirs(d)
    write(os.path.join(d, "wav.scp"), "spk2-utt1 /b.wav\nspk1-utt1 /a.wav\nspk1-utt1 /dup.wav\nspk3-utt1 /c.wav\n\n"
                                      "spk1-utt2 /a2.wav\n")
    write(os.path.join(d, "utt2spk"), "spk1-utt1 spk1\nspk2-utt1 spk2\nspk1-utt2 spk1\norphan spk4\nbad\n")
    write(os.path.join(d, "spk2utt"), "spk1 spk1-utt1\n")
    write(os.path.join(d, "trials"), "spk1-utt1 spk2-utt1 nontarget\nspk1-utt1 spk3-utt1 nontarget\nx y z\n")
    report = fix_data_dir(d)
    assert report.kept == 3
    assert report.removed == {"not in wav.scp": 1, "not in utt2spk": 1}
    assert report.bad_lines["wav.scp"] == 2 and report.bad_lines["utt2spk"] == 1 and report.bad_lines["trials"] == 2
    assert read_scp(os.path.join(d, "wav.scp")) == {"spk1-utt1": "/a.wav", "spk1-utt2": "/a2.wav",
                                                    "spk2-utt1": "/b.wav"}
    assert read_spk2utt(os.path.join(d, "spk2utt")) == {"spk1": ["spk1-utt1", "spk1-utt2"], "spk2": ["spk2-utt1"]}
    assert open(os.path.join(d, "trials")).read() == "spk1-utt1 spk2-utt1 nontarget\n"
    assert open(os.path.join(d, ".backup", "utt2spk")).read().startswith("spk1-utt1 spk1\nspk2-utt1")
    assert open(os.path.join(d, ".backup", "removed_utts")).read() == \
        "orphan not_in_wav.scp\nspk3-utt1 not_in_utt2spk\n"
    assert validate_data_dir(d).num_utts == 3


def test_fix_data_dir_spk2gender_filters_speakers(tmp_path):
    d = make_dir(tmp_path / "d", trials=False)
    write(os.path.join(d, "spk2gender"), "spk1 m\nspk3 f\n")
    report = fix_data_dir(d)
    assert report.kept == 4 and report.removed == {"with speaker not in spk2gender": 2}
    assert set(read_spk2utt(os.path.join(d, "spk2utt"))) == {"spk1", "spk3"}


def test_subset_data_dir_selectors(tmp_path):
    src = make_dir(tmp_path / "src")
    write(tmp_path / "utts", "spk2-utt2\nspk1-utt1 extra-column\nnot-there\n")
    sub = subset_data_dir(src, str(tmp_path / "a"), utt_list=str(tmp_path / "utts"))
    assert sub.utts == ["spk1-utt1", "spk2-utt2"]
    assert sub.spk2utt == {"spk1": ["spk1-utt1"], "spk2": ["spk2-utt2"]}
    write(tmp_path / "spks", "spk3\n")
    assert subset_data_dir(src, str(tmp_path / "b"), spk_list=str(tmp_path / "spks")).utts == \
        ["spk3-utt1", "spk3-utt2"]
    first = subset_data_dir(src, str(tmp_path / "c"), first=3)
    assert first.utts == c_sorted(WAV)[:3]
    # trials kept only where both sides survive
    assert open(os.path.join(tmp_path, "c", "trials")).read() == \
        "spk1-utt1 spk1-utt2 target\nspk1-utt1 spk2-utt1 nontarget\n"
    r1 = subset_data_dir(src, str(tmp_path / "r1"), random=4, seed=3).utts
    r2 = subset_data_dir(src, str(tmp_path / "r2"), random=4, seed=3).utts
    assert r1 == r2 and len(r1) == 4 and r1 == c_sorted(r1) and set(r1) <= set(WAV)
    validate_data_dir(str(tmp_path / "r1"))
    with pytest.raises(WesvError, match="choose between 1 and 6"):
        subset_data_dir(src, str(tmp_path / "e"), random=7)
    with pytest.raises(WesvError, match="exactly one"):
        subset_data_dir(src, str(tmp_path / "e"), first=1, random=1)


def test_split_data_dir(tmp_path):
    wav = {f"u{i:02d}": f"/x/{i}.wav" for i in range(11)}
    d = make_dir(tmp_path / "d", wav=wav, utt2spk={u: f"s{int(u[1:]) % 3}" for u in wav}, trials=False)
    write_scp(os.path.join(d, "utt2dur"), {u: "1.5" for u in wav})
    dirs = split_data_dir(d, 3)
    assert dirs == [os.path.join(d, "split3", str(j)) for j in (1, 2, 3)]
    parts = [DataDir.load(p).utts for p in dirs]
    assert [len(p) for p in parts] == [4, 4, 3]
    assert sum(parts, []) == list(wav)
    for j, p in enumerate(dirs, 1):
        assert DataDir.load(p).wav_scp == shard(wav, j, 3)
        assert list(read_scp(os.path.join(p, "utt2dur"))) == parts[j - 1]
        validate_data_dir(p)


def test_several_trial_lists_and_trials_link(tmp_path):
    # prepare_voxceleb writes trials_O/E/H with 'trials -> trials_O'; every list is checked, each once.
    d = make_dir(tmp_path / "d", trials=False)
    write(os.path.join(d, "trials_O"), "spk1-utt1 spk1-utt2 target\nspk1-utt1 spk2-utt1 nontarget\n")
    write(os.path.join(d, "trials_H"), "spk2-utt1 spk2-utt2 target\n")
    os.symlink("trials_O", os.path.join(d, "trials"))
    s = validate_data_dir(d)
    assert s.trials == {"trials": (2, 1), "trials_H": (1, 1)} and s.num_trials == 3
    assert "trials 2 (1 target), trials_H 1 (1 target)" in str(s)
    write(os.path.join(d, "trials_H"), "spk2-utt1 nobody target\n")
    assert f"{d}/trials_H:1: test utterance 'nobody' is not in wav.scp" in problems_of(d)
    write(os.path.join(d, "trials_H"), "spk2-utt1 spk2-utt2 target\n")
    # subset keeps the link and filters each list; fix filters through the link
    sub = str(tmp_path / "sub")
    subset_data_dir(d, sub, spk_list=_spk_list(tmp_path, "spk1", "spk2"))
    assert os.readlink(os.path.join(sub, "trials")) == "trials_O"
    assert open(os.path.join(sub, "trials_O")).read() == "spk1-utt1 spk1-utt2 target\nspk1-utt1 spk2-utt1 nontarget\n"
    write_scp(os.path.join(d, "wav.scp"), {k: v for k, v in WAV.items() if k != "spk2-utt1"})
    fix_data_dir(d)
    assert os.path.islink(os.path.join(d, "trials"))
    assert open(os.path.join(d, "trials_O")).read() == "spk1-utt1 spk1-utt2 target\n"
    assert not os.path.exists(os.path.join(d, "trials_H"))  # nothing left in it
    assert os.path.isfile(os.path.join(d, ".backup", "trials_H"))
    validate_data_dir(d)


def _spk_list(tmp_path, *spks):
    write(tmp_path / "spks", "".join(f"{s}\n" for s in spks))
    return str(tmp_path / "spks")


# ------------------------------------------------------------------------------------------- feature streams
def _write_stream(path, mats: dict, name="face"):
    import kaldiio
    ark, scp = os.path.join(path, f"{name}.ark"), os.path.join(path, f"{name}.scp")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for k, m in mats.items():
            w(k, np.asarray(m, dtype=np.float32))
    return scp


def test_face_stream_validates_with_missing_utts_counted(tmp_path):
    d = make_dir(tmp_path / "d")
    rng = np.random.default_rng(0)
    _write_stream(d, {u: rng.standard_normal((3 + i, 4)) for i, u in enumerate(list(WAV)[:4])})
    s = validate_data_dir(d)  # face.scp found on its own
    face = s.streams["face"]
    assert (face.num_utts, face.num_missing, face.dim) == (4, 2, 4)
    assert "stream face (4 utterances, dim 4, 2 missing)" in str(s)
    _write_stream(d, {u: rng.standard_normal((2, 3)) for u in WAV}, name="lips")
    s = validate_data_dir(d, streams=["lips.scp", os.path.join(d, "face.scp")])
    assert set(s.streams) == {"lips", "face"} and s.streams["lips"].num_missing == 0


def test_bad_streams_name_file_and_line(tmp_path):
    d = make_dir(tmp_path / "d")
    mats = {u: np.ones((3, 4)) for u in WAV}
    mats["spk2-utt1"] = np.ones((3, 5))  # line 3: other dimension
    mats["spk2-utt2"] = np.full((2, 4), np.nan)  # line 4: not finite
    mats["spk9-utt1"] = np.ones((2, 4))  # line 7: unknown utterance
    scp = _write_stream(d, mats)
    msg = problems_of(d)
    assert f"{scp}:3: utterance 'spk2-utt1' has dimension 5, earlier entries have 4" in msg
    assert f"{scp}:4: utterance 'spk2-utt2' holds NaN or inf" in msg
    assert f"{scp}:7: utterance 'spk9-utt1' is not in wav.scp" in msg
    lines = open(scp).read().splitlines()
    lines[4] = "spk3-utt1 /nonexistent.ark:12"
    write(scp, "\n".join(lines) + "\n")
    assert f"{scp}:5: cannot read '/nonexistent.ark:12'" in problems_of(d)
    assert "missing.scp: stream scp not found" in problems_of(make_dir(tmp_path / "e"), streams=["missing.scp"])


def test_read_stream_and_frames_for(tmp_path):
    from wesv.data.streams import Stream, read_stream, read_stream_info, write_stream_info

    d = make_dir(tmp_path / "d")
    seq = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)  # 10 frames = 2 s at 5 fps
    scp = _write_stream(d, {"spk1-utt1": seq, "spk1-utt2": seq[:3]})
    eager = read_stream(scp)
    assert list(eager) == ["spk1-utt1", "spk1-utt2"] and np.array_equal(eager["spk1-utt1"], seq)
    with pytest.raises(WesvError, match="no frame rate"):
        Stream(scp)
    write_stream_info(d, "face", frame_rate=5.0, dim=2)
    write_stream_info(d, "lips", frame_rate=25.0)
    assert read_stream_info(d) == {"face": {"frame_rate": 5.0, "dim": 2}, "lips": {"frame_rate": 25.0}}
    s = Stream(scp)
    assert s.frame_rate == 5.0 and "spk1-utt1" in s and "spk2-utt1" not in s
    assert np.array_equal(s.frames_for("spk1-utt1", 0.4, 1.0), seq[2:7])  # 0.4 s = frame 2, 1 s = 5 frames
    assert np.array_equal(s.frames_for("spk1-utt1", 1.9, 0.6), seq[[9, 9, 9]])  # past the end: last frame repeats
    assert s.frames_for("spk1-utt2", 0.0, 2.0).shape == (10, 2)  # equal crops, equal shapes
    assert s.frames_for("spk1-utt1", 0.0, 0.01).shape == (1, 2)
    write(os.path.join(d, "face.scp"), open(scp).read().replace("spk1-utt2", "spk1-utt1"))
    with pytest.raises(WesvError, match=r"face.scp:2: utterance 'spk1-utt1' appears twice"):
        read_stream(scp)


def test_subset_split_and_fix_carry_streams(tmp_path):
    from wesv.data.streams import read_stream, read_stream_info, write_stream_info

    d = make_dir(tmp_path / "d", trials=False)
    utts = list(WAV)
    _write_stream(d, {u: np.full((2, 3), i, dtype=np.float32) for i, u in enumerate(utts[1:], 1)})  # utt 0: none
    write_stream_info(d, "face", frame_rate=5.0)
    parts = split_data_dir(d, 2)
    for p in parts:
        s = validate_data_dir(p)
        assert set(read_stream(os.path.join(p, "face.scp"))) == set(DataDir.load(p).utts) - {utts[0]}
        assert read_stream_info(p) == {"face": {"frame_rate": 5.0}} and s.streams["face"].dim == 3
    sub = str(tmp_path / "sub")
    subset_data_dir(d, sub, first=3)
    assert list(read_stream(os.path.join(sub, "face.scp"))) == utts[1:3] and validate_data_dir(sub).streams
    os.remove(os.path.join(d, "utt2spk"))  # fix: utterances without a speaker go, and their faces with them
    write_scp(os.path.join(d, "utt2spk"), {u: U2S[u] for u in utts[:4]})
    fix_data_dir(d)
    assert list(read_stream(os.path.join(d, "face.scp"))) == utts[1:4]
    validate_data_dir(d)
