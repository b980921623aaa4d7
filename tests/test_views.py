"""Multi-view dataset: crop counts and lengths, non-overlap, determinism, cluster-map views, no true labels read."""
import builtins
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from wesv.data.views import ViewsConfig, ViewsDataset, build_views_dataset
from wesv.errors import WesvError

SR = 16000
NUM_UTTS = 6
UTT_SECONDS = [4.0, 4.0, 4.0, 1.5, 0.4, 4.0]  # utt3 holds the globals only, utt4 is shorter than any crop


def _code(j: int, n: int) -> np.ndarray:
    """Utterance j's samples encode (utterance, position): value = (j·S + i) / (NUM_UTTS·S), exact in float32."""
    s = 1 << 16
    return ((j * s + np.arange(n)) / (NUM_UTTS * s)).astype(np.float32)


def _decode(x: np.ndarray) -> tuple[int, int]:
    """(utterance, start sample) of a crop of ``_code``."""
    s = 1 << 16
    v = int(round(float(x[0]) * NUM_UTTS * s))
    return v // s, v % s


@pytest.fixture
def data(tmp_path):
    """A data dir with a utt2spk (true labels the SSL dataset must never open) and a pseudo-label dir."""
    train = tmp_path / "train"
    train.mkdir()
    wav_lines, spk_lines = [], []
    for j, sec in enumerate(UTT_SECONDS):
        path = tmp_path / f"u{j}.wav"
        sf.write(path, _code(j, int(sec * SR)), SR, subtype="FLOAT")
        wav_lines.append(f"utt{j} {path}")
        spk_lines.append(f"utt{j} spk{j % 2}")
    (train / "wav.scp").write_text("\n".join(wav_lines) + "\n")
    (train / "utt2spk").write_text("\n".join(spk_lines) + "\n")
    clusters = tmp_path / "round1"
    clusters.mkdir()
    # Clusters {0,1,2}, {3,5}, and utt4 alone.
    cl = {0: "a", 1: "a", 2: "a", 3: "b", 5: "b", 4: "c"}
    # uttX is not in the training wav.scp (a cluster dir may hold more): it must never be drawn.
    (clusters / "utt2spk").write_text("".join(f"utt{j} {c}\n" for j, c in sorted(cl.items())) + "uttX a\n")
    return str(train), str(clusters)


def small_cfg(**kw) -> ViewsConfig:
    base = dict(num_global=2, global_seconds=1.0, num_local=3, local_seconds=0.5)
    base.update(kw)
    return ViewsConfig(**base)


def test_counts_lengths_and_sample_keys(data):
    ds = build_views_dataset(small_cfg(), data[0], None, seed=3)
    assert len(ds) == NUM_UTTS
    s = ds[0]
    assert set(s) == {"views", "index", "utt", "view_utts", "view_sources", "global_overlap"}
    assert [len(v) for v in s["views"]] == [SR] * 2 + [SR // 2] * 3
    assert all(v.dtype == np.float32 for v in s["views"])
    assert s["index"] == 0 and s["utt"] == "utt0" and s["view_utts"] == ["utt0"] * 5
    assert s["view_sources"] == [0] * 5


def test_views_do_not_overlap_when_the_utterance_holds_them(data):
    ds = build_views_dataset(small_cfg(), data[0], None, seed=0)
    for epoch in range(5):
        ds.set_epoch(epoch)
        spans = []
        for v in ds[0]["views"]:  # 4 s hold 2×1 s + 3×0.5 s
            utt, start = _decode(v)
            assert utt == 0
            np.testing.assert_array_equal(v, _code(0, start + len(v))[start:])  # a contiguous crop
            spans.append((start, start + len(v)))
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_global_views_apart_when_only_they_fit_and_short_utterances(data):
    ds = build_views_dataset(small_cfg(), data[0], None, seed=0)
    assert [len(v) for v in ds[3]["views"]] == [SR] * 2 + [SR // 2] * 3  # 1.5 s: 2×1 s must overlap...
    ds2 = build_views_dataset(small_cfg(global_seconds=0.7), data[0], None, seed=0)
    for epoch in range(5):
        ds2.set_epoch(epoch)
        starts = sorted(_decode(v)[1] for v in ds2[3]["views"][:2])  # ...but 2×0.7 s do
        assert starts[1] - starts[0] >= int(0.7 * SR)
    short = ds[4]["views"]  # 0.4 s, repeated to every crop length
    assert [len(v) for v in short] == [SR] * 2 + [SR // 2] * 3
    padded = ViewsDataset({"utt4": ds.specs[4]}, small_cfg(), short="pad")[0]["views"][0]
    assert len(padded) == SR and np.all(padded[int(0.4 * SR):] == 0)


def test_deterministic_per_seed_epoch_index(data):
    a = build_views_dataset(small_cfg(), data[0], None, seed=7)
    b = build_views_dataset(small_cfg(), data[0], None, seed=7)
    for x, y in zip(a[2]["views"], b[2]["views"]):
        np.testing.assert_array_equal(x, y)
    before = [v.copy() for v in a[2]["views"]]
    a.set_epoch(1)
    assert any(not np.array_equal(x, y) for x, y in zip(before, a[2]["views"]))
    c = build_views_dataset(small_cfg(), data[0], None, seed=8)
    assert any(not np.array_equal(x, y) for x, y in zip(before, c[2]["views"]))


def test_each_view_augmented_independently_from_the_sample_rng(data):
    calls = []

    def augment(wave, rng):
        calls.append(len(wave))
        return wave + rng.normal(0, 0.01, len(wave)).astype(np.float32)

    ds = build_views_dataset(small_cfg(), data[0], augment, seed=1)
    clean = build_views_dataset(small_cfg(), data[0], None, seed=1)[0]["views"]
    s1, s2 = ds[0]["views"], ds[0]["views"]
    assert calls == [SR] * 2 + [SR // 2] * 3 + [SR] * 2 + [SR // 2] * 3
    for x, y, c in zip(s1, s2, clean):
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, c)
    noise = [x[:100] - c[:100] for x, c in zip(s1, clean)]
    assert not np.allclose(noise[0], noise[1])


def test_cluster_views_come_from_other_utterances_of_the_same_cluster(data):
    train, clusters = data
    cfg = small_cfg(cluster_data=clusters, p_same_cluster=1.0, cluster_views="global")
    ds = build_views_dataset(cfg, train, None, seed=0)
    members = {0: {1, 2}, 1: {0, 2}, 2: {0, 1}, 3: {5}, 5: {3}}
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i, others in members.items():
            s = ds[i]
            for v, view in enumerate(s["views"]):
                src = _decode(view)[0]
                assert s["view_utts"][v] == f"utt{src}"
                assert (src in others) if v < 2 else (src == i)
    assert ds[4]["view_utts"] == ["utt4"] * 5  # alone in its cluster: own crops
    drawn = {u for e in range(10) for u in (ds.set_epoch(e) or ds[0]["view_utts"][:2])}
    assert drawn == {"utt1", "utt2"}  # every other member is drawn
    loc = build_views_dataset(small_cfg(cluster_data=clusters, p_same_cluster=1.0, cluster_views="local"), train,
                              None, seed=0)[0]
    assert loc["view_utts"][:2] == ["utt0"] * 2 and all(u in ("utt1", "utt2") for u in loc["view_utts"][2:])
    half = build_views_dataset(small_cfg(cluster_data=clusters, p_same_cluster=0.5, cluster_views="all"), train,
                               None, seed=0)
    own = sum(u == "utt0" for e in range(20) for u in (half.set_epoch(e) or half[0]["view_utts"]))
    assert 20 < own < 80  # about half of 100 views


def test_training_utt2spk_is_never_opened(data, monkeypatch):
    train, clusters = data
    forbidden = os.path.realpath(os.path.join(train, "utt2spk"))
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == forbidden:
            raise AssertionError("the SSL dataset opened the training dir's utt2spk")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    for cfg in (small_cfg(), small_cfg(cluster_data=clusters, p_same_cluster=1.0)):
        ds = build_views_dataset(cfg, train, None, seed=0)
        for i in range(len(ds)):
            ds[i]
    with pytest.raises(AssertionError):
        open(os.path.join(train, "utt2spk"))


def test_config_errors(data):
    train, _ = data
    with pytest.raises(WesvError, match="training data dir"):
        build_views_dataset(small_cfg(cluster_data=train, p_same_cluster=0.5), train, None, seed=0)
    with pytest.raises(WesvError, match="cluster_data"):
        build_views_dataset(small_cfg(p_same_cluster=0.5), train, None, seed=0)
    with pytest.raises(WesvError, match="cluster_views"):
        build_views_dataset(small_cfg(cluster_views="some"), train, None, seed=0)
    with pytest.raises(WesvError, match="local_seconds_max"):
        build_views_dataset(small_cfg(local_seconds_max=0.1), train, None, seed=0)
    with pytest.raises(WesvError, match="wav.scp"):
        build_views_dataset(small_cfg(), os.path.dirname(train), None, seed=0)


def test_collate_ranges_and_workers_agree(data):
    cfg = small_cfg(global_seconds=0.8, global_seconds_max=1.0, local_seconds=0.3, local_seconds_max=0.5)
    ds = build_views_dataset(cfg, data[0], None, seed=0)
    batches = {}
    for workers in (0, 1):
        loader = DataLoader(ds, batch_size=3, collate_fn=ds.collate_fn, num_workers=workers)
        batches[workers] = list(loader)
    lengths = set()
    for b0, b1 in zip(batches[0], batches[1]):
        assert b0["index"].tolist() == b1["index"].tolist() and len(b0["utt"]) == 3
        assert len(b0["views"]) == 5 and all(v.dtype == torch.float32 for v in b0["views"])
        g, loc = b0["views"][0].shape[1], b0["views"][2].shape[1]
        assert b0["views"][1].shape == (3, g) and all(v.shape == (3, loc) for v in b0["views"][2:])
        assert int(0.8 * SR) <= g <= SR and int(0.3 * SR) <= loc <= SR // 2
        lengths.add((g, loc))
        for x, y in zip(b0["views"], b1["views"]):
            assert torch.equal(x, y)
        for v, view in enumerate(b0["views"]):  # trimmed crops are still contiguous pieces of the utterance
            for row, utt in zip(view.numpy(), b0["utt"]):
                j, start = _decode(row)
                if UTT_SECONDS[j] * SR >= len(row) + start and f"utt{j}" == utt:
                    np.testing.assert_array_equal(row, _code(j, start + len(row))[start:])
    assert len(lengths) == 2  # two batches, drawn lengths differ


# ------------------------------------------------------------------------------------------- spread, overlap
def _overlap_on_short_utterances(crop_fn) -> list[float]:
    """Shared fraction of 2 × 2 s global crops of 2–5 s utterances (the mini corpus), for a crop function."""
    from wesv.data.audio import overlap_fraction
    rng = np.random.default_rng(0)
    size, out = 2 * SR, []
    for n in rng.integers(2 * SR, 5 * SR + 1, size=400):
        (a, b) = crop_fn(int(n), [size, size], rng)
        out.append(overlap_fraction(a, b))
    return out


def _independent_when_they_do_not_fit(n, sizes, rng):
    """Today's placement before the fix: side by side if they fit, else independent random crops."""
    from wesv.data.audio import crop_spans
    if sum(sizes) <= n:
        return crop_spans(n, sizes, rng)
    return [(int(s), int(s) + size) for s, size in ((rng.integers(0, n - size + 1), size) for size in sizes)]


def test_global_crops_are_spread_to_the_minimal_overlap():
    from wesv.data.audio import crop_spans
    size = 2 * SR
    rng = np.random.default_rng(0)
    lengths = rng.integers(2 * SR, 5 * SR + 1, size=400)
    minimal = np.mean([max(0, 2 * size - n) / size for n in lengths])
    before = np.mean(_overlap_on_short_utterances(_independent_when_they_do_not_fit))
    exact = np.mean(_overlap_on_short_utterances(lambda n, s, r: crop_spans(n, s, r, jitter=0.0)))
    after = np.mean(_overlap_on_short_utterances(crop_spans))
    assert exact == pytest.approx(minimal, abs=1e-9)  # opposite ends: the least overlap the length allows
    assert minimal <= after <= minimal + 0.05  # a little jitter (5 % of a crop at most per end)
    assert before > minimal + 0.1  # independent placement shared far more
    for _ in range(50):  # which view sits at the start is random, and the ends are reached
        a, b = crop_spans(3 * SR, [size, size], rng, jitter=0.0)
        assert sorted([a, b]) == [(0, size), (SR, 3 * SR)]


def test_spread_crops_stay_inside_and_vary(data):
    from wesv.data.audio import crop_spans
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(100):
        spans = crop_spans(3 * SR, [2 * SR, 2 * SR, SR], rng)
        assert all(0 <= a and b <= 3 * SR and b - a == size for (a, b), size in zip(spans, [2 * SR, 2 * SR, SR]))
        starts.add(spans[0][0])
    assert len(starts) > 10
    assert crop_spans(SR, [2 * SR, SR // 2], rng)[0] is None  # longer than the wave: repeated by crop()


def test_dataset_reports_the_global_overlap_and_the_methods_log_it(data):
    from wesv.data.views import view_logs
    ds = build_views_dataset(small_cfg(), data[0], None, seed=0)
    assert ds[0]["global_overlap"] == 0.0  # 4 s hold both 1 s globals side by side
    assert ds[3]["global_overlap"] == pytest.approx(0.5, abs=0.05)  # 1.5 s: 2 × 1 s at opposite ends share 0.5 s
    assert ds[4]["global_overlap"] == 1.0  # shorter than a crop: both hold the whole utterance
    for epoch in range(5):
        ds.set_epoch(epoch)
        starts = sorted(_decode(v)[1] for v in ds[3]["views"][:2])
        assert starts[0] <= 0.05 * SR and starts[1] >= 0.45 * SR  # spread to the two ends
    batch = ds.collate([ds[i] for i in range(NUM_UTTS)])
    assert float(view_logs(batch)["view_overlap"]) == pytest.approx(np.mean([ds[i]["global_overlap"]
                                                                              for i in range(NUM_UTTS)]))


def test_speed_perturbation_is_drawn_once_per_utterance(tmp_path):
    from wesv.augment import AugmentConfig, Augmenter
    path = tmp_path / "tone.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * np.arange(4 * SR) / SR)).astype(np.float32), SR)
    aug = Augmenter(AugmentConfig(speed_perturb=True, speeds=(0.9, 1.1), prob=0.0))
    ds = ViewsDataset({"tone": str(path)}, small_cfg(global_seconds=1.0, num_local=2), aug, seed=0)
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        # the tone's frequency is 1000 Hz × speed: one speed for every view of the utterance
        peaks = {int(round(np.argmax(np.abs(np.fft.rfft(v))) * SR / len(v), -2)) for v in ds[0]["views"]}
        assert len(peaks) == 1 and peaks <= {900, 1100}
        seen |= peaks
    assert seen == {900, 1100}
