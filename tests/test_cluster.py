"""Clustering into pseudo-speakers: k-means + average-linkage AHC, cleaning, data dir + report, purity, plots."""
import builtins
import json
import os
import sys

import kaldiio
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from wesv.bin import cluster as cluster_cli
from wesv.bin import plot_rounds as plot_cli
from wesv.cluster import kmeans as kmeans_mod
from wesv.cluster.ahc import _nearest, cosine_ahc, weighted_average_linkage
from wesv.cluster.filtering import drop_small, keep_closest
from wesv.cluster.kmeans import Backend, resolve_backend, resolve_index, spherical_kmeans
from wesv.cluster.metrics import cluster_metrics, inverse_purity, purity
from wesv.cluster.pipeline import ClusterConfig, cluster_embeddings, cluster_name, run_clustering
from wesv.cluster.torch_kmeans import _split_empty, assign_nearest, nearest_other, torch_spherical_kmeans
from wesv.data.datadir import read_scp, read_spk2utt, read_utt2spk
from wesv.data.validate import validate_data_dir
from wesv.errors import WesvError


def blobs(num_spk: int, per_spk: int, dim: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows around ``num_spk`` random directions, and their true speaker index."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_spk, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(num_spk), per_spk)
    x = centres[truth] + noise * rng.standard_normal((len(truth), dim)) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), truth


def make_round_dir(tmp_path, num_spk=12, per_spk=10, dim=24, noise=0.6, drop_key=None, extra_key=None,
                   offset=None):
    """A data dir (wav.scp + true utt2spk) and an embedding ark/scp of its utterances (plus ``offset``, if given)."""
    x, truth = blobs(num_spk, per_spk, dim, noise)
    if offset is not None:
        x = (x + offset).astype(np.float32)
    data = tmp_path / "train"
    data.mkdir()
    utts = [f"spk{t:03d}-utt{i:04d}" for i, t in enumerate(truth)]
    (data / "wav.scp").write_text("".join(f"{u} /corpus/{u}.wav\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} spk{t:03d}\n" for u, t in zip(utts, truth)))
    emb = tmp_path / "emb"
    emb.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{emb / 'xvector.ark'},{emb / 'xvector.scp'}") as writer:
        for u, v in zip(utts, x):
            if u != drop_key:
                writer(u, v * 3.0)  # not unit norm on disk: clustering must normalise
        if extra_key:
            writer(extra_key, x[0])
    return str(data), str(emb / "xvector.scp"), utts, truth


# ------------------------------------------------------------------------------------------- algorithms
@pytest.mark.parametrize("k", [1, 5, 20, 35, 150, 299])
def test_weighted_average_linkage_equals_scipy_cut_at_k(k):
    x, _ = blobs(20, 15, 16, 2.5, seed=1)
    ours = weighted_average_linkage(x, np.ones(len(x)), num_clusters=k)
    ref = cosine_ahc(x, num_clusters=k)
    assert len(np.unique(ours)) == k
    assert adjusted_rand_score(ref, ours) == 1.0


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.9])
def test_weighted_average_linkage_equals_scipy_cut_at_threshold(threshold):
    x, _ = blobs(20, 15, 16, 2.5, seed=2)
    ours = weighted_average_linkage(x, np.ones(len(x)), min_similarity=1 - threshold)
    ref = cosine_ahc(x, threshold=threshold)
    assert adjusted_rand_score(ref, ours) == 1.0


def test_sizes_weight_means_like_repeated_utterances():
    x, _ = blobs(10, 10, 16, 2.0, seed=3)
    counts = np.random.default_rng(3).integers(1, 5, len(x))
    repeated = cosine_ahc(np.repeat(x, counts, axis=0), num_clusters=12)
    weighted = weighted_average_linkage(x, counts, num_clusters=12)
    assert adjusted_rand_score(repeated, np.repeat(weighted, counts)) == 1.0


def test_cosine_ahc_threshold_separates_tight_groups():
    x, truth = blobs(3, 8, 32, 0.3, seed=4)
    labels = cosine_ahc(x, threshold=0.5)
    assert len(np.unique(labels)) == 3
    assert adjusted_rand_score(truth, labels) == 1.0
    with pytest.raises(WesvError, match="exactly one"):
        cosine_ahc(x, num_clusters=3, threshold=0.5)


def test_kmeans_ahc_recovers_separated_speakers():
    x, truth = blobs(40, 30, 32, 0.7, seed=5)
    labels = cluster_embeddings(x, ClusterConfig(algorithm="kmeans_ahc", num_clusters=40, num_kmeans=160, device="cpu"))
    assert len(np.unique(labels)) == 40
    assert normalized_mutual_info_score(truth, labels) > 0.95


def test_two_level_kmeans_covers_every_point_with_about_k_centroids():
    x, truth = blobs(30, 20, 16, 0.5, seed=6)
    centroids, assign = spherical_kmeans(x, 60, seed=0, num_coarse=6, index="flat")
    assert 55 <= len(centroids) <= 60 and assign.min() == 0 and assign.max() == len(centroids) - 1
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    # every fine cluster lies inside one speaker when k > speakers and speakers are well apart
    assert cluster_metrics(assign, truth)["purity"] > 0.95


FAISS_CPU, TORCH_CPU = Backend("faiss", "cpu"), Backend("torch", "cpu")


@pytest.mark.parametrize("backend,index", [(FAISS_CPU, "flat"), (FAISS_CPU, "hnsw"), (TORCH_CPU, "flat")],
                         ids=["faiss-flat", "faiss-hnsw", "torch"])
def test_kmeans_backends_keep_every_atom_inside_one_speaker(backend, index):
    x, truth = blobs(40, 30, 32, 0.5, seed=5)
    centroids, assign = spherical_kmeans(x, 120, seed=0, backend=backend, index=index)
    assert centroids.shape == (120, 32) and assign.shape == (1200,) and assign.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert cluster_metrics(assign, truth)["purity"] == 1.0
    # the returned assignment is each row's nearest returned centroid
    np.testing.assert_array_equal(assign, np.argmax(x @ centroids.T, axis=1))


def test_torch_and_faiss_kmeans_ahc_find_the_same_speakers():
    x, truth = blobs(40, 30, 32, 0.5, seed=5)
    found = {}
    for name in ("faiss", "torch"):
        cfg = ClusterConfig(algorithm="kmeans_ahc", num_clusters=40, num_kmeans=160, device="cpu", kmeans_backend=name)
        found[name] = cluster_embeddings(x, cfg)
        assert normalized_mutual_info_score(truth, found[name]) > 0.95
    assert adjusted_rand_score(found["faiss"], found["torch"]) == 1.0  # same clusters up to relabelling


def test_torch_kmeans_subsampled_training_still_assigns_every_row():
    x, truth = blobs(20, 30, 16, 0.4, seed=8)
    centroids, assign = spherical_kmeans(x, 40, seed=1, backend=TORCH_CPU, max_points_per_centroid=8)
    assert assign.shape == (600,) and set(assign) <= set(range(40))
    np.testing.assert_array_equal(assign, np.argmax(x @ centroids.T, axis=1))
    assert cluster_metrics(assign, truth)["purity"] == 1.0
    same = spherical_kmeans(x, 40, seed=1, backend=FAISS_CPU, max_points_per_centroid=8)[1]
    assert cluster_metrics(same, truth)["purity"] == 1.0


def test_torch_bfloat16_assignment_rescores_to_the_float32_answer():
    x, _ = blobs(20, 30, 32, 1.5, seed=9)
    xt, cen = torch.from_numpy(x), torch.from_numpy(x[::7].copy())  # 86 centroids, many near-ties
    exact = assign_nearest(xt, cen)
    np.testing.assert_array_equal(exact.numpy(), np.argmax(x @ x[::7].T, axis=1))
    np.testing.assert_array_equal(assign_nearest(xt, cen, torch.bfloat16).numpy(), exact.numpy())
    full = torch_spherical_kmeans(x, 20, seed=0)[1]
    half = torch_spherical_kmeans(x, 20, seed=0, assign_dtype="bfloat16")[1]
    np.testing.assert_array_equal(full, half)
    with pytest.raises(ValueError, match="assign_dtype"):
        torch_spherical_kmeans(x, 20, assign_dtype="int8")


def test_split_empty_reseeds_from_a_large_cluster_like_faiss():
    cen = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    counts = np.array([1, 9, 0])
    assert _split_empty(cen, counts, np.random.default_rng(0)) == 1
    # only cluster 1 can be drawn (probability ~ size - 1); the two copies share its points and sit apart
    np.testing.assert_array_equal(counts, [1, 5, 4])
    eps = 1 / 1024
    np.testing.assert_allclose(cen.numpy(), [[1, 0, 0, 0], [0, 1 + eps, 0, 0], [0, 1 - eps, 0, 0]], rtol=1e-6)


def test_torch_nearest_other_equals_faiss():
    rng = np.random.default_rng(10)
    means = (rng.standard_normal((300, 16)) * rng.uniform(0.2, 1.0, (300, 1))).astype(np.float32)
    nbr_f, sim_f = _nearest(means, FAISS_CPU)
    nbr_t, sim_t = nearest_other(torch.from_numpy(means))
    np.testing.assert_array_equal(nbr_f, nbr_t.numpy())
    np.testing.assert_allclose(sim_f, sim_t.numpy(), rtol=1e-5, atol=1e-6)
    assert (nbr_f != np.arange(300)).all()


def test_torch_average_linkage_equals_scipy():
    x, _ = blobs(20, 15, 16, 2.5, seed=1)
    ours = weighted_average_linkage(x, np.ones(len(x)), num_clusters=35, backend=TORCH_CPU)
    assert adjusted_rand_score(cosine_ahc(x, num_clusters=35), ours) == 1.0


def test_backend_choice_and_errors(monkeypatch):
    monkeypatch.setattr(kmeans_mod, "_cuda_available", lambda: False)
    assert resolve_backend("auto", "auto") == FAISS_CPU
    assert resolve_backend("cpu", "torch") == TORCH_CPU
    with pytest.raises(WesvError, match="--device cuda: neither torch nor faiss sees a GPU"):
        resolve_backend("cuda", "auto")
    with pytest.raises(WesvError, match="faiss-gpu, or pass --kmeans-backend torch"):
        resolve_backend("cuda", "faiss")
    monkeypatch.setattr(kmeans_mod, "_cuda_available", lambda: True)
    assert resolve_backend("auto", "auto") == Backend("torch", "cuda")  # a GPU, but faiss has none: torch
    assert resolve_backend("cpu", "auto") == FAISS_CPU
    assert resolve_index("auto", FAISS_CPU, kmeans_mod.HNSW_MIN_CENTROIDS) == "hnsw"
    assert resolve_index("auto", FAISS_CPU, kmeans_mod.HNSW_MIN_CENTROIDS - 1) == "flat"
    assert resolve_index("auto", TORCH_CPU, 10**6) == "flat"
    with pytest.raises(WesvError, match="--kmeans-index hnsw runs with faiss on the CPU"):
        resolve_index("hnsw", Backend("torch", "cuda"), 100)


def test_clustering_runs_without_faiss(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    monkeypatch.setattr(kmeans_mod, "_cuda_available", lambda: False)
    with pytest.raises(WesvError, match="faiss is not installed"):
        resolve_backend("cpu", "faiss")
    assert resolve_backend("auto", "auto") == TORCH_CPU
    x, truth = blobs(20, 20, 32, 0.4, seed=11)
    labels = cluster_embeddings(x, ClusterConfig(algorithm="kmeans_ahc", num_clusters=20, num_kmeans=60))
    assert adjusted_rand_score(truth, labels) == 1.0


def test_clustering_is_deterministic_for_a_seed():
    x, _ = blobs(25, 12, 16, 1.5, seed=7)
    cfg = ClusterConfig(algorithm="kmeans_ahc", num_clusters=25, num_kmeans=80, seed=3, device="cpu")
    np.testing.assert_array_equal(cluster_embeddings(x, cfg), cluster_embeddings(x, cfg))


# ------------------------------------------------------------------------------------------- cleaning, metrics
def test_keep_closest_keeps_the_rows_nearest_their_centroid():
    # cluster 0 along e0 with one off-axis row; cluster 1 along e1 with one off-axis row
    x = np.array([[1, 0, 0], [1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 1, 0], [0, 0.8, 0.6]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(keep_closest(x, labels, 4 / 6), [1, 1, 0, 1, 1, 0])
    assert keep_closest(x, labels, 0.5).sum() == 3


def test_drop_small_removes_exactly_the_small_clusters():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    mask = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1], dtype=bool)  # cluster 3 keeps 2 rows inside the mask
    np.testing.assert_array_equal(drop_small(labels, mask, 3), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(drop_small(labels, mask, 2), [1, 1, 1, 1, 1, 0, 1, 0, 0, 1])


def test_purity_and_inverse_purity_known_values():
    truth = np.array([0, 0, 0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1])  # speaker 0 split in two; cluster 1 mixes both speakers
    assert purity(pred, truth) == pytest.approx(4 / 6)
    assert inverse_purity(pred, truth) == pytest.approx(4 / 6)
    assert purity(np.arange(6), truth) == 1.0 and inverse_purity(np.arange(6), truth) == pytest.approx(2 / 6)
    m = cluster_metrics(pred, truth)
    assert m["num_clusters"] == 2 and m["num_speakers"] == 2 and 0 < m["nmi"] < 1


def test_cluster_names_are_zero_padded():
    assert cluster_name(42, 7500) == "c00042"
    assert cluster_name(7, 200000) == "c000007"


# ------------------------------------------------------------------------------------------- data dir + CLI
def run_cli(argv):
    with pytest.raises(SystemExit) as exc:
        cluster_cli.main(argv)
    return exc.value.code


def test_cli_writes_valid_datadir_and_report_with_truth(tmp_path):
    data, scp, utts, truth = make_round_dir(tmp_path)
    out = str(tmp_path / "train_round1")
    code = run_cli(["--emb", scp, "--data", data, "--out", out, "--algorithm", "kmeans_ahc", "--num-clusters", "12",
                    "--num-kmeans", "40", "--truth-utt2spk", os.path.join(data, "utt2spk"), "--device", "cpu"])
    assert code == 0
    validate_data_dir(out, check_trials=False)
    utt2spk = read_utt2spk(os.path.join(out, "utt2spk"))
    assert sorted(utt2spk) == list(utt2spk) == sorted(utts)  # every utterance kept, C-sorted
    assert set(utt2spk.values()) == {cluster_name(i, 12) for i in range(12)}
    assert read_scp(os.path.join(out, "wav.scp"))[utts[3]] == f"/corpus/{utts[3]}.wav"
    spk2utt = read_spk2utt(os.path.join(out, "spk2utt"))
    assert list(spk2utt) == sorted(spk2utt) and all(v == sorted(v) for v in spk2utt.values())
    report = json.loads((tmp_path / "train_round1" / "cluster_report.json").read_text())
    assert report["num_clusters"] == 12 and report["num_utts_kept"] == len(utts)
    assert report["metrics"]["nmi"] > 0.95 and report["metrics"]["purity"] > 0.95
    assert report["metrics"]["fraction_kept"] == 1.0 and report["metrics"]["num_speakers"] == 12
    assert set(report["time_s"]) >= {"kmeans", "ahc", "total"}


def test_filters_keep_exactly_what_they_report(tmp_path):
    data, scp, utts, _ = make_round_dir(tmp_path, num_spk=10, per_spk=10)
    out = str(tmp_path / "r1")
    cfg = ClusterConfig(algorithm="ahc", num_clusters=14, keep_fraction=0.8, min_cluster_size=6, device="cpu")
    report = run_clustering(scp, data, out, cfg)
    x = np.stack([kaldiio.load_scp(scp)[u] for u in utts])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = cluster_embeddings(x, cfg)
    expected = drop_small(labels, keep_closest(x, labels, 0.8), 6)
    kept = read_utt2spk(os.path.join(out, "utt2spk"))
    assert sorted(kept) == sorted(u for u, k in zip(utts, expected) if k)
    assert report["dropped"]["keep_fraction_utts"] == 20
    assert report["num_utts_kept"] == len(kept) == expected.sum()
    assert report["dropped"]["min_cluster_size_utts"] == 80 - len(kept)
    sizes = np.unique(list(kept.values()), return_counts=True)[1]
    assert sizes.min() >= 6 and sorted(sizes, reverse=True) == list(sizes)  # c00000 is the largest
    assert read_scp(os.path.join(out, "wav.scp")).keys() == kept.keys()
    assert "metrics" not in report


def test_source_utt2spk_is_never_opened_without_truth(tmp_path, monkeypatch):
    data, scp, _, _ = make_round_dir(tmp_path)
    forbidden = os.path.realpath(os.path.join(data, "utt2spk"))
    real_open = builtins.open
    opened = []

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            opened.append(os.path.realpath(file))
            if opened[-1] == forbidden:
                raise AssertionError(f"opened {file}")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    report = run_clustering(scp, data, str(tmp_path / "r1"), ClusterConfig(algorithm="kmeans_ahc", num_clusters=12,
                                                                              device="cpu"))
    assert os.path.realpath(os.path.join(data, "wav.scp")) in opened  # the guard did see the reads
    assert forbidden not in opened and "metrics" not in report


def test_missing_embedding_names_the_scp(tmp_path):
    data, scp, utts, _ = make_round_dir(tmp_path, drop_key="spk003-utt0031")
    with pytest.raises(WesvError, match=r"xvector\.scp: no embedding for 1 .*'spk003-utt0031'"):
        run_clustering(scp, data, str(tmp_path / "r1"), ClusterConfig(num_clusters=12, device="cpu"))


def test_extra_embedding_key_names_the_scp(tmp_path):
    data, scp, _, _ = make_round_dir(tmp_path, extra_key="stranger-utt")
    with pytest.raises(WesvError, match=r"xvector\.scp: 1 embedding key.*'stranger-utt'"):
        run_clustering(scp, data, str(tmp_path / "r1"), ClusterConfig(num_clusters=12, device="cpu"))


def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys):
    data, scp, _, _ = make_round_dir(tmp_path)
    assert run_cli(["--emb", scp, "--data", data, "--out", str(tmp_path / "r"), "--algorithm", "kmeans"]) == 2
    assert "--algorithm kmeans needs --num-clusters" in capsys.readouterr().err
    assert run_cli(["--emb", scp, "--data", data, "--out", data, "--num-clusters", "3"]) == 2
    assert "is the source data dir" in capsys.readouterr().err
    assert run_cli(["--emb", scp, "--data", data, "--out", str(tmp_path / "r"), "--num-clusters", "3",
                    "--kmeans-backend", "torch", "--kmeans-index", "hnsw"]) == 2
    assert "--kmeans-index hnsw runs with faiss on the CPU" in capsys.readouterr().err


def test_cli_torch_backend_writes_the_same_clusters_as_faiss(tmp_path):
    data, scp, utts, truth = make_round_dir(tmp_path)
    clusters = []
    for backend in ("faiss", "torch"):
        out = tmp_path / f"r_{backend}"
        assert run_cli(["--emb", scp, "--data", data, "--out", str(out), "--num-clusters", "12", "--num-kmeans",
                        "40", "--device", "cpu", "--kmeans-backend", backend]) == 0
        assert json.loads((out / "cluster_report.json").read_text())["config"]["kmeans_backend"] == backend
        clusters.append(read_utt2spk(str(out / "utt2spk")))
    assert adjusted_rand_score([clusters[0][u] for u in utts], [clusters[1][u] for u in utts]) == 1.0


def test_plot_rounds_orders_rounds_naturally(tmp_path):
    paths = []
    for r, nmi in ((1, 0.90), (2, 0.93), (10, 0.97)):
        d = tmp_path / f"train_round{r}"
        d.mkdir()
        metrics = {"nmi": nmi, "purity": nmi, "inverse_purity": nmi - 0.05, "num_clusters": 100 + r,
                   "num_speakers": 100}
        (d / "cluster_report.json").write_text(json.dumps({"metrics": metrics}))
        paths.append(str(d / "cluster_report.json"))
    png = tmp_path / "purity.png"
    with pytest.raises(SystemExit) as exc:
        plot_cli.main(["--reports", *sorted(paths), "--out", str(png)])
    assert exc.value.code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from wesv.cluster.plot import plot_rounds
    assert [r["round"] for r in plot_rounds(sorted(paths), str(png))] == ["train_round1", "train_round2",
                                                                          "train_round10"]


def test_second_clustering_into_the_same_out_fails_naming_the_holder(tmp_path):
    from wesv.lock import exclusive_lock
    data, scp, _, _ = make_round_dir(tmp_path)
    out = tmp_path / "r1"
    out.mkdir()
    with exclusive_lock(str(out / ".lock"), "the first run"):
        with pytest.raises(WesvError, match=rf"r1/\.lock.*pid {os.getpid()}|pid {os.getpid()}.*r1/\.lock"):
            run_clustering(scp, data, str(out), ClusterConfig(num_clusters=12, device="cpu"))
    assert os.listdir(out) == [".lock"]
    run_clustering(scp, data, str(out), ClusterConfig(num_clusters=12, device="cpu"))
    assert (out / "utt2spk").exists()


def test_failed_first_clustering_leaves_no_out_dir(tmp_path):
    data, scp, _, _ = make_round_dir(tmp_path, drop_key="spk003-utt0031")
    with pytest.raises(WesvError):
        run_clustering(scp, data, str(tmp_path / "r1"), ClusterConfig(num_clusters=12, device="cpu"))
    assert not (tmp_path / "r1").exists()


# ------------------------------------------------------------------------------------------- chance-corrected
def test_singletons_flatter_purity_and_nmi_but_not_ami_or_ari():
    truth = np.repeat(np.arange(20), 10)
    singletons = np.arange(len(truth))
    m = cluster_metrics(singletons, truth)
    assert m["purity"] == 1.0 and m["nmi"] > 0.6  # flattering
    assert abs(m["ami"]) < 0.05 and abs(m["ari"]) < 0.05  # corrected for chance


def test_chance_partition_keeps_sizes_is_seeded_and_scores_near_zero():
    from wesv.cluster.metrics import chance_metrics, chance_partition
    truth = np.repeat(np.arange(10), 20)
    pred = truth.copy()
    shuffled = chance_partition(pred)
    np.testing.assert_array_equal(np.bincount(shuffled), np.bincount(pred))
    np.testing.assert_array_equal(shuffled, chance_partition(pred))  # fixed seed
    assert cluster_metrics(pred, truth)["ami"] == pytest.approx(1.0)
    c = chance_metrics(pred, truth)
    assert abs(c["ami"]) < 0.05 and abs(c["ari"]) < 0.05 and c["purity"] < 0.3


def test_report_holds_ami_ari_and_the_chance_partition(tmp_path):
    data, scp, utts, truth = make_round_dir(tmp_path)
    report = run_clustering(scp, data, str(tmp_path / "r1"), ClusterConfig(algorithm="kmeans_ahc", num_clusters=12,
                                                                              device="cpu"),
                            truth_utt2spk=os.path.join(data, "utt2spk"))
    saved = json.loads((tmp_path / "r1" / "cluster_report.json").read_text())
    assert saved["metrics"]["ami"] == report["metrics"]["ami"] > 0.9 and saved["metrics"]["ari"] > 0.9
    chance = saved["metrics_chance"]
    assert chance["num_clusters"] == saved["metrics"]["num_clusters"] and abs(chance["ami"]) < 0.05
    assert chance["purity"] < saved["metrics"]["purity"]


def test_plot_rounds_draws_ami_and_chance_and_reads_old_reports(tmp_path):
    from wesv.cluster.plot import plot_rounds
    paths = []
    for r in (1, 2):
        d = tmp_path / f"round{r}"
        d.mkdir()
        metrics = {"nmi": 0.9, "purity": 0.9, "inverse_purity": 0.8, "num_clusters": 50, "num_speakers": 10}
        report = {"metrics": metrics}
        if r == 2:  # a new report; round 1 is from before AMI was measured
            report = {"metrics": {**metrics, "ami": 0.7, "ari": 0.6},
                      "metrics_chance": {"nmi": 0.4, "ami": 0.0, "ari": 0.0, "purity": 0.2}}
        (d / "cluster_report.json").write_text(json.dumps(report))
        paths.append(str(d / "cluster_report.json"))
    rows = plot_rounds(paths, str(tmp_path / "p.png"))
    assert rows[0]["ami"] is None and rows[1]["ami"] == 0.7 and rows[1]["chance_purity"] == 0.2


# ------------------------------------------------------------------------------------------- --subtract-mean
def test_subtract_mean_gives_clustering_the_scoring_geometry(tmp_path):
    from wesv.cluster.pipeline import load_aligned_embeddings
    from wesv.scoring.io import write_vector
    offset = np.zeros(24, dtype=np.float32)
    offset[0] = 4.0  # a shared direction (channel, bias) that dominates every raw embedding
    data, scp, utts, truth = make_round_dir(tmp_path, offset=offset)
    wav = os.path.join(data, "wav.scp")
    raw = np.stack([kaldiio.load_scp(scp)[u] for u in utts]).astype(np.float64)
    plain = load_aligned_embeddings(scp, utts, wav)
    auto = load_aligned_embeddings(scp, utts, wav, "auto")
    centred = raw - raw.mean(0)
    np.testing.assert_allclose(auto, centred / np.linalg.norm(centred, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(auto, axis=1), 1.0, atol=1e-5)
    write_vector(str(tmp_path / "mean.vec"), raw.mean(0))
    np.testing.assert_allclose(load_aligned_embeddings(scp, utts, wav, str(tmp_path / "mean.vec")), auto, atol=1e-5)
    # the geometry changes as expected: without the mean every pair looks alike (the offset), with it the centred
    # rows spread around the origin and different speakers are far apart
    other = truth[:, None] != truth[None, :]
    assert (plain @ plain.T)[other].mean() > 0.8
    assert abs((auto @ auto.T)[other].mean()) < 0.1
    assert np.linalg.norm(auto.mean(0)) < 0.1 < np.linalg.norm(plain.mean(0))


def test_cli_subtract_mean_is_recorded_and_a_wrong_dimension_is_one_line(tmp_path, capsys):
    from wesv.scoring.io import write_vector
    offset = np.zeros(24, dtype=np.float32)
    offset[0] = 4.0
    data, scp, _, _ = make_round_dir(tmp_path, offset=offset)
    out = tmp_path / "r1"
    assert run_cli(["--emb", scp, "--data", data, "--out", str(out), "--algorithm", "ahc", "--num-clusters", "12",
                    "--subtract-mean", "auto", "--truth-utt2spk", os.path.join(data, "utt2spk"),
                    "--device", "cpu"]) == 0
    report = json.loads((out / "cluster_report.json").read_text())
    assert report["config"]["subtract_mean"] == "auto" and report["metrics"]["ami"] > 0.9
    write_vector(str(tmp_path / "bad.vec"), np.zeros(7))
    capsys.readouterr()
    assert run_cli(["--emb", scp, "--data", data, "--out", str(tmp_path / "r2"), "--num-clusters", "12",
                    "--subtract-mean", str(tmp_path / "bad.vec"), "--device", "cpu"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if " INFO " not in line]
    assert len(err) == 1 and "dimension 7" in err[0] and "Traceback" not in err[0] and not (tmp_path / "r2").exists()


# ------------------------------------------------------------------------------------------- several branches
def _write_emb(path, keys, rows):
    with kaldiio.WriteHelper(f"ark,scp:{path}.ark,{path}.scp") as writer:
        for k, v in zip(keys, rows):
            writer(k, np.asarray(v, dtype=np.float32))
    return f"{path}.scp"


def test_fused_branches_concatenate_weighted_normalised_blocks(tmp_path):
    from wesv.cluster.pipeline import load_fused_embeddings

    data, scp, utts, truth = make_round_dir(tmp_path, num_spk=8, per_spk=10)
    face, _ = blobs(8, 10, 6, 0.6, seed=5)
    keep_face = [i for i in range(len(utts)) if i % 7]  # every 7th utterance has no face
    face_scp = _write_emb(str(tmp_path / "face"), [utts[i] for i in keep_face], face[keep_face] * 2.0)
    x, missing = load_fused_embeddings([scp, face_scp], [1.0, 0.5], utts, os.path.join(data, "wav.scp"))
    assert x.shape == (80, 24 + 6) and missing == {scp: 0, face_scp: 80 - len(keep_face)}
    audio = np.stack([kaldiio.load_scp(scp)[u] for u in utts])
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    full = np.concatenate([audio[1], 0.5 * face[1]]) / np.sqrt(1.25)
    assert np.allclose(x[1], full, atol=1e-6)
    assert np.allclose(x[0], np.concatenate([audio[0], np.zeros(6)]), atol=1e-6)  # no face: zeros, renormalised

    out = str(tmp_path / "r1")
    code = run_cli(["--emb", f"{scp},{face_scp}", "--emb-weights", "1,0.5", "--data", data, "--out", out,
                    "--algorithm", "ahc", "--num-clusters", "8", "--truth-utt2spk", os.path.join(data, "utt2spk"),
                    "--device", "cpu"])
    assert code == 0
    report = json.loads(open(os.path.join(out, "cluster_report.json")).read())
    assert report["embeddings"] == [scp, face_scp] and report["emb_weights"] == [1.0, 0.5]
    assert report["emb_missing"][face_scp] == 80 - len(keep_face) and report["metrics"]["nmi"] > 0.95
    out2 = str(tmp_path / "r2")
    assert run_cli(["--emb", scp, "--emb", face_scp, "--emb-weights", "1,0.5", "--data", data, "--out", out2,
                    "--algorithm", "ahc", "--num-clusters", "8", "--device", "cpu"]) == 0
    assert open(os.path.join(out, "utt2spk")).read() == open(os.path.join(out2, "utt2spk")).read()
    centred, _ = load_fused_embeddings([scp, face_scp], [1.0, 0.5], utts, os.path.join(data, "wav.scp"), "auto")
    raw = np.stack([kaldiio.load_scp(scp)[u] for u in utts]).astype(np.float64)
    a = (raw - raw.mean(0))[1] / np.linalg.norm((raw - raw.mean(0))[1])
    f = face[keep_face] * 2.0
    fc = f - f.mean(0)
    b = fc[keep_face.index(1)] / np.linalg.norm(fc[keep_face.index(1)])
    assert np.allclose(centred[1], np.concatenate([a, 0.5 * b]) / np.sqrt(1.25), atol=1e-5)


def test_fused_branches_errors(tmp_path, capsys):
    from badinput import assert_clean_error, run_entry, tree_digest

    data, scp, utts, _ = make_round_dir(tmp_path, num_spk=4, per_spk=5)
    face, _ = blobs(4, 5, 6, 0.6)
    part = _write_emb(str(tmp_path / "part"), utts[2:], face[2:])
    other = _write_emb(str(tmp_path / "other"), utts[5:], face[5:])
    stranger = _write_emb(str(tmp_path / "stranger"), utts + ["nobody-utt"], np.vstack([face, face[:1]]))
    out = str(tmp_path / "r")
    base = ["--data", data, "--out", out, "--algorithm", "ahc", "--num-clusters", "4", "--device", "cpu"]
    cases = [
        (["--emb", f"{part},{other}"], ("2 utterance(s)", "no embedding in any of", repr(utts[0]))),
        (["--emb", f"{scp},{part}", "--emb-weights", "1"], ("1 weight(s) for 2 --emb",)),
        (["--emb", f"{scp},{part}", "--emb-weights", "1,0"], ("must be positive",)),
        (["--emb", f"{scp},{part}", "--emb-weights", "1,x"], ("comma-separated numbers",)),
        (["--emb", f"{scp},{stranger}"], ("stranger.scp: 1 embedding key", "'nobody-utt'")),
        (["--emb", part], ("part.scp: no embedding for 2",)),  # one scp must hold every utterance
        (["--emb", f"{scp},{part}", "--subtract-mean", scp], ("a mean file fits one model", "auto")),
    ]
    before = tree_digest(data)
    for argv, needles in cases:
        assert_clean_error(run_entry("cluster", argv + base, capsys), *needles)
        assert not os.path.exists(out) and tree_digest(data) == before


def test_shuffled_control_keeps_utterances_and_cluster_sizes(tmp_path, capsys):
    from collections import Counter

    from badinput import assert_clean_error, run_entry

    src = tmp_path / "round1"
    src.mkdir()
    utts = [f"u{i:02d}" for i in range(30)]
    labels = ["a"] * 15 + ["b"] * 10 + ["c"] * 5
    (src / "wav.scp").write_text("".join(f"{u} /x/{u}.wav\n" for u in utts))
    (src / "utt2spk").write_text("".join(f"{u} {c}\n" for u, c in zip(utts, labels)))
    out = tmp_path / "shuffled"
    assert run_entry("shuffle_labels", ["--data", src, "--out", out, "--seed", "1"], capsys).code == 0
    new = read_utt2spk(str(out / "utt2spk"))
    assert sorted(new) == utts and sorted(Counter(new.values()).values()) == [5, 10, 15]
    old_groups = {frozenset(u for u, c in zip(utts, labels) if c == k) for k in "abc"}
    new_groups = {frozenset(u for u in new if new[u] == k) for k in set(new.values())}
    assert old_groups != new_groups
    assert read_scp(str(out / "wav.scp"))["u03"] == "/x/u03.wav"
    assert_clean_error(run_entry("shuffle_labels", ["--data", tmp_path / "nope", "--out", out], capsys), "utt2spk")
