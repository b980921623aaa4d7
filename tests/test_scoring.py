"""Cosine / AS-norm scoring against per-trial loops; compute_metrics and results_table behaviour and errors."""
import json
import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from wesv.bin import compute_metrics, results_table, score
from wesv.data.textcols import match_items
from wesv.errors import WesvError
from wesv.scoring.cosine import pair_scores
from wesv.scoring.evaluate import evaluate
from wesv.scoring.io import read_embeddings, read_mean, read_scores, write_scores, write_vector
from wesv.scoring.scorer import run_scoring

DIM = 8


@pytest.fixture()
def setup(tmp_path):
    """Embeddings of 6 speakers × 4 utterances (with an offset, so mean subtraction matters) and 60 trials."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, DIM))
    emb = {f"s{s}-u{u}": (centres[s] + 0.8 * rng.normal(size=DIM) + 2.0).astype(np.float32)
           for s in range(6) for u in range(4)}
    kaldiio.save_ark(str(tmp_path / "emb.ark"), emb, scp=str(tmp_path / "emb.scp"))
    keys = list(emb)
    pairs = set()
    while len(pairs) < 60:
        a, b = rng.choice(len(keys), 2, replace=False)
        pairs.add((keys[a], keys[b]))
    pairs |= {(f"s{s}-u0", f"s{s}-u1") for s in range(6)}
    lines = [f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}" for a, b in sorted(pairs)]
    (tmp_path / "trials").write_text("\n".join(lines) + "\n")
    # Cohort: another 5 speakers × 3 utterances, with a utt2spk.
    cohort = {f"c{s}-u{u}": (rng.normal(size=DIM) + 2.0).astype(np.float32) for s in range(5) for u in range(3)}
    kaldiio.save_ark(str(tmp_path / "cohort.ark"), cohort, scp=str(tmp_path / "cohort.scp"))
    (tmp_path / "utt2spk").write_text("".join(f"{k} {k[:2]}\n" for k in cohort))
    return tmp_path, emb, cohort, lines


def unit(v):
    return v / np.linalg.norm(v)


def read_score_file(path):
    e, t, s = read_scores(str(path))
    return {(a, b): v for a, b, v in zip(e, t, s)}


def test_cosine_equals_per_trial_computation(setup):
    d, emb, _, lines = setup
    score.main.__wrapped__(["--trials", str(d / "trials"), "--enroll-emb", str(d / "emb.scp"),
                            "--test-emb", str(d / "emb.scp"), "--out", str(d / "scores")])
    got = read_score_file(d / "scores")
    assert [f"{a} {b}" for a, b in got] == [" ".join(line.split()[:2]) for line in lines]  # trial order kept
    for (a, b), v in got.items():
        assert v == pytest.approx(float(unit(emb[a]) @ unit(emb[b])), abs=2e-6)


def test_mean_subtraction(setup):
    d, emb, cohort, _ = setup
    mean = np.mean(list(cohort.values()), axis=0)
    write_vector(str(d / "mean.vec"), mean)
    np.testing.assert_allclose(read_mean(str(d / "mean.vec")), mean, rtol=1e-6)
    np.testing.assert_allclose(read_mean(str(d / "cohort.scp")), mean, rtol=1e-5)
    for mean_path in ("mean.vec", "cohort.scp"):
        run_scoring(str(d / "trials"), str(d / "emb.scp"), str(d / "emb.scp"), str(d / "s"),
                    mean_path=str(d / mean_path))
        for (a, b), v in read_score_file(d / "s").items():
            assert v == pytest.approx(float(unit(emb[a] - mean) @ unit(emb[b] - mean)), abs=2e-6)


def direct_asnorm(x, y, cohort, k):
    """One trial, the textbook way: each side's top-k cohort cosine scores → z-norm both ways, average."""
    raw = unit(x) @ unit(y)
    out = []
    for side in (x, y):
        cs = np.sort([unit(side) @ c for c in cohort])[::-1][:k]
        out.append((raw - cs.mean()) / cs.std())
    return 0.5 * (out[0] + out[1])


@pytest.mark.parametrize("per_speaker", [False, True])
@pytest.mark.parametrize("top_k", [3, None])
def test_asnorm_equals_per_trial_computation(setup, per_speaker, top_k):
    d, emb, cohort, _ = setup
    mean = np.mean(list(cohort.values()), axis=0)
    if per_speaker:
        spk = sorted({k[:2] for k in cohort})
        members = [unit(np.sum([unit(v - mean) for k, v in cohort.items() if k[:2] == s], axis=0)) for s in spk]
    else:
        members = [unit(v - mean) for v in cohort.values()]
    argv = ["--trials", str(d / "trials"), "--enroll-emb", str(d / "emb.scp"), "--test-emb", str(d / "emb.scp"),
            "--mean-emb", str(d / "cohort.scp"), "--cohort-emb", str(d / "cohort.scp"), "--out", str(d / "as")]
    argv += ["--cohort-utt2spk", str(d / "utt2spk")] if per_speaker else []
    argv += ["--asnorm-topk", str(top_k)] if top_k else ["--no-adaptive"]
    score.main.__wrapped__(argv)
    got = read_score_file(d / "as")
    k = top_k or len(members)
    for (a, b), v in got.items():
        assert v == pytest.approx(direct_asnorm(emb[a] - mean, emb[b] - mean, members, k), abs=1e-4)


def test_trial_without_embedding_names_the_line(setup):
    d, *_ = setup
    with open(d / "trials", "a") as f:
        f.write("s0-u0 nobody target\n")
    n = len((d / "trials").read_text().splitlines())
    with pytest.raises(WesvError, match=rf"trials:{n}: test utterance 'nobody' has no embedding"):
        run_scoring(str(d / "trials"), str(d / "emb.scp"), str(d / "emb.scp"), str(d / "s"))


def test_read_embeddings_errors(tmp_path):
    kaldiio.save_ark(str(tmp_path / "a.ark"), {"x": np.ones(4, np.float32), "y": np.ones(5, np.float32)},
                     scp=str(tmp_path / "a.scp"))
    with pytest.raises(WesvError, match=r"a.scp:2: embedding 'y' has dimension 5"):
        read_embeddings(str(tmp_path / "a.scp"))
    (tmp_path / "b.scp").write_text(f"x {tmp_path}/missing.ark:3\n")
    with pytest.raises(WesvError, match=r"b.scp:1: cannot read embedding"):
        read_embeddings(str(tmp_path / "b.scp"))
    with pytest.raises(WesvError, match="not found"):
        read_embeddings(str(tmp_path / "none.scp"))


def write_case(d):
    """Trials with known metrics (EER 1/3) and their scores in shuffled order."""
    trials = ["a x target", "b y target", "c z target", "d x nontarget", "e y nontarget", "f z nontarget"]
    values = {"a x": 3, "b y": 4, "c z": 5, "d x": 1, "e y": 2, "f z": 3.5}
    (d / "trials").write_text("\n".join(trials) + "\n")
    (d / "scores").write_text("".join(f"{k} {values[k]}\n" for k in ["f z", "a x", "c z", "e y", "b y", "d x"]))


def test_compute_metrics_prints_and_writes_json(tmp_path, capsys):
    write_case(tmp_path)
    with pytest.raises(SystemExit) as ex:
        compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
                              "--json", str(tmp_path / "m.json"), "--det-png", str(tmp_path / "det.png"),
                              "--system", "toy", "--extra", "NMI=0.9", "--extra", "wall time (s)=12",
                              "--extra", "note=a=b"])
    assert ex.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["EER 33.333", "minDCF@0.01 0.3333", "minDCF@0.05 0.3333"]
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["system"] == "toy" and result["EER"] == pytest.approx(100 / 3)
    assert (result["num_target"], result["num_nontarget"]) == (3, 3)
    assert result["extra"] == {"NMI": 0.9, "wall time (s)": 12, "note": "a=b"}
    assert result["scores"].endswith("scores") and result["det_png"].endswith("det.png")
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("trials_extra,scores_extra,message", [
    ("a y target\n", "", r"trials:7: trial 'a y' has no score"),
    ("b y target\n", "", r"trials:7: trial 'b y' repeats line 2"),
    ("", "a x 0.5\n", r"scores:7: score for 'a x' repeats line 2"),
    ("a y maybe\n", "a y 1\n", r"trials:7: label 'maybe' is not 'target' or 'nontarget'"),
    ("", "a y high\n", r"scores:7: score 'high' is not a number"),
    ("", "a y\n", r"scores:7: expected 'enroll test score', got 2 fields"),
])
def test_compute_metrics_errors_name_the_line(tmp_path, capsys, trials_extra, scores_extra, message):
    write_case(tmp_path)
    with open(tmp_path / "trials", "a") as f:
        f.write(trials_extra)
    with open(tmp_path / "scores", "a") as f:
        f.write(scores_extra)
    with pytest.raises(SystemExit) as ex:
        compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores")])
    assert ex.value.code == 2
    assert message.replace("\\", "") in capsys.readouterr().err.replace("\\", "")


def test_extra_score_lines_are_ignored(tmp_path):
    write_case(tmp_path)
    with open(tmp_path / "scores", "a") as f:
        f.write("q q 9\n")
    result = evaluate(str(tmp_path / "trials"), str(tmp_path / "scores"))
    assert result["EER"] == pytest.approx(100 / 3) and result["num_scores_unused"] == 1


def test_results_table(tmp_path, capsys):
    write_case(tmp_path)
    jsons = []
    for name, extra in [("cos", ["--extra", "wall time (s)=12.5"]), ("asnorm", ["--extra", "NMI=0.95"])]:
        jsons.append(str(tmp_path / f"{name}.json"))
        with pytest.raises(SystemExit):
            compute_metrics.main(["--trials", str(tmp_path / "trials"), "--scores", str(tmp_path / "scores"),
                                  "--json", jsons[-1], "--system", name, *extra])
    with pytest.raises(SystemExit) as ex:
        results_table.main(["--out", str(tmp_path / "RESULTS.md"), "--det-png", str(tmp_path / "det.png"), *jsons])
    assert ex.value.code == 0
    lines = (tmp_path / "RESULTS.md").read_text().splitlines()
    assert lines[2] == "| system | EER (%) | minDCF@0.01 | minDCF@0.05 | wall time (s) | NMI |"
    assert lines[4] == "| cos | 33.333 | 0.3333 | 0.3333 | 12.5 | – |"
    assert lines[5] == "| asnorm | 33.333 | 0.3333 | 0.3333 | – | 0.95 |"
    assert "![DET curves](det.png)" in lines
    assert (tmp_path / "det.png").stat().st_size > 1000
    (tmp_path / "bad.json").write_text('{"system": "x"}')
    with pytest.raises(SystemExit) as ex:
        results_table.main(["--out", str(tmp_path / "R.md"), str(tmp_path / "bad.json")])
    assert ex.value.code == 2
    assert "bad.json: missing EER" in capsys.readouterr().err


# ------------------------------------------------------------------------------ vectorised text and ark I/O
def test_write_scores_matches_printf(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.normal(size=3000) * rng.choice([1e-4, 1.0, 50.0, 1e5], 3000)
    values[:8] = [0.0, -0.0, 1.5, -1e-9, 0.1234565, -12.3456789, 999.9999996, -0.9999996]
    enroll = [f"e{i % 17}" for i in range(3000)]
    test = np.array([f"t-{i}" for i in range(3000)], dtype=object)
    write_scores(str(tmp_path / "s"), enroll, test, values)
    assert (tmp_path / "s").read_text() == "".join(f"{e} {t} {v:.6f}\n" for e, t, v in zip(enroll, test, values))
    e, t, s = read_scores(str(tmp_path / "s"))
    assert e == enroll and t == test.tolist()
    assert s.tolist() == [float(f"{v:.6f}") for v in values]
    # Values beyond the integer fast path (huge, NaN) are printed one by one, as printf does.
    write_scores(str(tmp_path / "big"), ["a", "b"], ["x", "y"], np.array([3e12, np.nan]))
    assert (tmp_path / "big").read_text() == "a x 3000000000000.000000\nb y nan\n"


def test_read_scores_unusual_layouts(tmp_path):
    """Tabs, CRLF, no final newline, exponents and UTF-8 ids take the per-line path and read the same."""
    for name, text in {"tabs": "a\tx 0.5\nb y\t-2\n", "crlf": "a x 0.5\r\nb y -2\r\n", "last": "a x 0.5\nb y -2",
                       "exp": "a x 5e-1\nb y -2.0E0\n"}.items():
        (tmp_path / name).write_text(text)
        assert read_scores(str(tmp_path / name)) == (["a", "b"], ["x", "y"], pytest.approx([0.5, -2.0])), name
    (tmp_path / "utf8").write_text("é x 0.25\n", encoding="utf-8")
    assert read_scores(str(tmp_path / "utf8"))[0] == ["é"]
    (tmp_path / "nan").write_text("a x 0.5\nb y nan\n")
    with pytest.raises(WesvError, match=r"nan:2: score 'nan' is not finite"):
        read_scores(str(tmp_path / "nan"))


def test_read_embeddings_fast_path_matches_kaldiio(tmp_path):
    rng = np.random.default_rng(1)
    vecs = {f"u{i}": rng.normal(size=5).astype(np.float32) for i in range(6)}
    items = list(vecs.items())
    kaldiio.save_ark(str(tmp_path / "1.ark"), dict(items[:4]), scp=str(tmp_path / "1.scp"))
    kaldiio.save_ark(str(tmp_path / "2.ark"), dict(items[4:]), scp=str(tmp_path / "2.scp"))
    (tmp_path / "all.scp").write_text((tmp_path / "2.scp").read_text() + (tmp_path / "1.scp").read_text())
    keys, mat = read_embeddings(str(tmp_path / "all.scp"))  # two arks, interleaved order kept
    assert keys == ["u4", "u5", "u0", "u1", "u2", "u3"]
    np.testing.assert_array_equal(mat, np.stack([vecs[k] for k in keys]))
    # Matrices (1 × D) are not the fast path's vectors: kaldiio reads them, same result.
    kaldiio.save_ark(str(tmp_path / "m.ark"), {k: v[None] for k, v in vecs.items()}, scp=str(tmp_path / "m.scp"))
    keys2, mat2 = read_embeddings(str(tmp_path / "m.scp"))
    assert keys2 == list(vecs) and np.array_equal(mat2, np.stack(list(vecs.values())))
    # A truncated ark is reported by the line naming the missing entry.
    data = (tmp_path / "1.ark").read_bytes()
    (tmp_path / "1.ark").write_bytes(data[:-10])
    with pytest.raises(WesvError, match=r"1.scp:4: cannot read embedding"):
        read_embeddings(str(tmp_path / "1.scp"))
    (tmp_path / "dup.scp").write_text((tmp_path / "2.scp").read_text() * 2)
    with pytest.raises(WesvError, match=r"dup.scp:3: key 'u4' appears twice"):
        read_embeddings(str(tmp_path / "dup.scp"))


def test_match_items_against_a_dict():
    rng = np.random.default_rng(2)
    table = np.array([f"spk{i}-utt{i * 7}".encode() for i in rng.permutation(5000)[:3000]])
    queries = np.array([f"spk{i}-utt{i * 7}".encode() for i in rng.integers(0, 5000, 20000)] + [b"x" * 40])
    index = {k: i for i, k in enumerate(table.tolist())}
    expect = [index.get(q, -1) for q in queries.tolist()]
    assert match_items(queries, table).tolist() == expect
    assert match_items(queries[:0], table).tolist() == [] and match_items(queries[:3], table[:0]).tolist() == [-1] * 3


def test_pair_scores_threads_agree():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    ia, ib = rng.integers(0, 50, 1000), rng.integers(0, 40, 1000)
    expect = np.sum(a[ia].astype(np.float64) * b[ib], axis=1)
    for threads in (1, 3):
        np.testing.assert_allclose(pair_scores(a, b, ia, ib, chunk=64, threads=threads), expect, atol=1e-5)


def test_scoring_and_metrics_do_not_import_torch():
    code = ("import sys, wesv.bin.score, wesv.bin.compute_metrics, wesv.scoring.scorer, wesv.scoring.evaluate; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0  # torch's import costs seconds


def _random_ids(rng, n: int) -> list[str]:
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789-_/"))
    return ["".join(rng.choice(alphabet, int(rng.integers(1, 40)))) + f"#{i}" for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_matching_against_a_dict_with_ids_of_any_length(tmp_path, seed):
    """Scoring a big list and evaluating a sub-list: extra, shuffled score lines with longer ids, or fewer."""
    from wesv.scoring.evaluate import matched_scores
    rng = np.random.default_rng(seed)
    ids = _random_ids(rng, 300)
    pairs = list({(ids[a], ids[b]) for a, b in rng.integers(0, len(ids), (400, 2))})
    trials = pairs[:250]
    labels = rng.integers(0, 2, len(trials)).astype(bool)
    scored = {p: float(rng.normal()) for p in pairs}  # every trial plus extra pairs
    scored[("x" * 90, "y" * 70)] = 0.5  # an extra line longer than any trial id
    order = list(scored)
    rng.shuffle(order)
    (tmp_path / "trials").write_text("".join(f"{e} {t} {'target' if lab else 'nontarget'}\n"
                                             for (e, t), lab in zip(trials, labels)))
    (tmp_path / "scores").write_text("".join(f"{e} {t} {scored[(e, t)]!r}\n" for e, t in order))
    got, got_labels, unused = matched_scores(str(tmp_path / "trials"), str(tmp_path / "scores"))
    assert got.tolist() == [scored[p] for p in trials] and got_labels.tolist() == labels.tolist()
    assert unused == len(scored) - len(trials)
    # and the other way round: a score file missing trials names the first of them
    missing = trials[int(rng.integers(0, len(trials)))]
    (tmp_path / "scores").write_text("".join(f"{e} {t} {scored[(e, t)]!r}\n" for e, t in order if (e, t) != missing))
    with pytest.raises(WesvError, match=r"\(1 trials missing\)"):
        matched_scores(str(tmp_path / "trials"), str(tmp_path / "scores"))


def test_hash_bytes_does_not_depend_on_the_array_width():
    from wesv.data.textcols import hash_bytes, pair_keys
    items = np.array([b"a", b"spk1-utt12", b"x" * 17, b"y" * 24])
    wide = items.astype("S64")
    assert hash_bytes(items).tolist() == hash_bytes(wide).tolist()
    assert pair_keys(items, items[::-1]).tolist() == pair_keys(wide, items[::-1].astype("S33")).tolist()


def test_bom_on_the_trials_does_not_hide_every_trial(tmp_path, caplog):
    write_case(tmp_path)
    (tmp_path / "trials").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "trials").read_bytes())
    result = evaluate(str(tmp_path / "trials"), str(tmp_path / "scores"))
    assert result["EER"] == pytest.approx(100 / 3)
    assert "BOM" in caplog.text


def test_results_table_shows_ami_beside_nmi_as_the_recipes_pass_them():
    from wesv.scoring.table import results_table
    rows = [{"system": "a", "EER": 1.0, "minDCF@0.01": 0.1, "minDCF@0.05": 0.05},
            {"system": "b", "EER": 2.0, "minDCF@0.01": 0.2, "minDCF@0.05": 0.1, "extra": {"AMI": 0.5, "NMI": 0.8}}]
    lines = results_table(rows).splitlines()
    assert lines[0] == "| system | EER (%) | minDCF@0.01 | minDCF@0.05 | AMI | NMI |"
    assert lines[3].endswith("| 0.5 | 0.8 |") and lines[2].endswith("| – | – |")


# ------------------------------------------------------------------------------------------- score fusion
def test_fuse_scores_znormalises_and_weights_any_trial_order(tmp_path, capsys):
    from badinput import run_entry

    rng = np.random.default_rng(7)
    pairs = [(f"e{i}", f"t{i % 5}") for i in range(30)]
    a, b = rng.normal(3.0, 2.0, 30), rng.normal(-1.0, 0.1, 30)
    write_scores(str(tmp_path / "a"), [p[0] for p in pairs], [p[1] for p in pairs], a)
    perm = rng.permutation(30)  # the second branch lists the trials in another order
    write_scores(str(tmp_path / "b"), [pairs[i][0] for i in perm], [pairs[i][1] for i in perm], b[perm])
    out = tmp_path / "fused"
    assert run_entry("fuse_scores", ["--scores", tmp_path / "a", tmp_path / "b", "--weights", "1", "0.5", "--out",
                                     out], capsys).code == 0
    a6, b6 = np.round(a, 6), np.round(b, 6)  # what the score files hold
    expect = (a6 - a6.mean()) / a6.std() + 0.5 * (b6 - b6.mean()) / b6.std()
    e, t, s = read_scores(str(out))
    assert list(zip(e, t)) == pairs  # the first file's order
    np.testing.assert_allclose(s, expect, atol=2e-6)
    assert run_entry("fuse_scores", ["--scores", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "eq"],
                     capsys).code == 0
    np.testing.assert_allclose(read_scores(str(tmp_path / "eq"))[2], (a6 - a6.mean()) / a6.std()
                               + (b6 - b6.mean()) / b6.std(), atol=2e-6)


def test_fuse_scores_errors(tmp_path, capsys):
    from badinput import assert_clean_error, run_entry, tree_digest

    (tmp_path / "a").write_text("e1 t1 0.5\ne1 t2 0.1\ne2 t1 -0.3\n")
    (tmp_path / "short").write_text("e1 t1 0.5\ne2 t1 -0.3\n")
    (tmp_path / "other").write_text("e1 t1 0.5\ne9 t2 0.1\ne2 t1 -0.3\n")
    (tmp_path / "dup").write_text("e1 t1 0.5\ne1 t1 0.1\ne2 t1 -0.3\n")
    (tmp_path / "flat").write_text("e1 t1 1\ne1 t2 1\ne2 t1 1\n")
    (tmp_path / "out").write_text("old\n")
    a = tmp_path / "a"
    cases = [
        ([a, tmp_path / "short"], [], ("short: has 2 trials", "a:2 (e1 t2) is missing")),
        ([a, tmp_path / "other"], [], ("other:2: trial e9 t2 is not in",)),
        ([a, tmp_path / "dup"], [], ("dup:2: trial e1 t1 repeats line 1",)),
        ([a, tmp_path / "flat"], [], ("flat: every score is 1",)),
        ([a, a], ["--weights", "1"], ("1 weight(s) for 2 score files",)),
        ([a], [], ("at least two score files",)),
        ([a, tmp_path / "missing"], [], ("missing",)),
    ]
    before = tree_digest(str(tmp_path / "out"))
    for files, extra, needles in cases:
        outcome = run_entry("fuse_scores", ["--scores", *files, *extra, "--out", tmp_path / "out"], capsys)
        assert_clean_error(outcome, *needles)
        assert tree_digest(str(tmp_path / "out")) == before
