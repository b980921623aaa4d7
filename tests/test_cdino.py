"""C-DINO: cluster-drawn views obey p_same_cluster, refreshed maps reach persistent workers and survive a resume,
the continuation restores DINO's whole state, and the one-line errors of a foreign or misshapen checkpoint."""
import json
import os
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainer_helpers import TINY_ENCODER, make_tiny_corpus
from wesv.config import load_config
from wesv.data.datadir import read_utt2spk
from wesv.data.views import ViewsConfig, ViewsDataset, read_cluster_map
from wesv.errors import WesvError
from wesv.methods import cdino as cdino_mod
from wesv.methods.cdino import CDino, CDinoConfig, cluster_share
from wesv.models import build_encoder
from wesv.trainer import train
from wesv.trainer.method import DataInfo, find_method
from wesv.trainer.sampler import EpochIndexed, EpochSampler, worker_init_fn

VIEWS = "num_global: 2\n  global_seconds: 0.3\n  num_local: 2\n  local_seconds: 0.15\n"
HEAD = "out_dim: 32\n  hidden_dim: 16\n  bottleneck_dim: 8\n  collapse_grace_epochs: 5\n"


def config_text(train_dir: str, method_type: str, body: str, epochs: int = 1, workers: int = 0) -> str:
    """A tiny DINO / C-DINO run on CPU (2 steps per epoch)."""
    return (f"type: {method_type}\nseed: 1\ndata:\n  train: {train_dir}\n  batch_size: 4\n  num_workers: {workers}\n"
            f"encoder:\n  {TINY_ENCODER}\nmethod:\n  {VIEWS}  {HEAD}  {body}\n"
            "optim:\n  name: sgd\n  lr: 0.05\n  warmup_epochs: 0\n  schedule: constant\n"
            f"trainer:\n  epochs: {epochs}\n  max_steps_per_epoch: 2\n  device: cpu\n  log_every: 1\n"
            "  progress: false\n  num_threads: 1\n")


def run(tmp_path, name: str, text: str, resume: bool = False) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    exp = str(tmp_path / name)
    assert train(load_config(str(path)), exp, resume=resume) == 0
    return exp


@pytest.fixture(scope="module")
def dino_run(tmp_path_factory):
    """A tiny corpus and a finished 1-epoch DINO run on it (shared by the continuation tests)."""
    tmp = tmp_path_factory.mktemp("cdino")
    data = make_tiny_corpus(str(tmp), num_speakers=3, utts_per_speaker=4, seconds=0.5)
    exp = run(tmp, "exp_dino", config_text(data, "dino", "ema_base: 0.9\n"))
    return data, exp


def test_registered_as_dino_with_cluster_keys():
    entry = find_method("cdino")
    assert entry.factory is CDino and entry.config is CDinoConfig
    assert issubclass(CDinoConfig, ViewsConfig) and not CDino.uses_labels


# ---- the sampler seam ---------------------------------------------------------------------------------------

def fake_dataset(p: float, cluster_views: str = "all") -> ViewsDataset:
    """Ten utterances (no audio: only ``view_sources`` is used): clusters {0,1,2}, {3..6}, singleton {7}; 8, 9
    unmapped."""
    utts = [f"u{i}" for i in range(10)]
    cmap = {**{f"u{i}": "a" for i in (0, 1, 2)}, **{f"u{i}": "b" for i in (3, 4, 5, 6)}, "u7": "c"}
    cfg = ViewsConfig(num_global=2, num_local=4, cluster_data="unused", p_same_cluster=p,
                      cluster_views=cluster_views)
    return ViewsDataset({u: f"/nonexistent/{u}.wav" for u in utts}, cfg, cluster_map=cmap)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_cluster_views_obey_p_same_cluster_uniform_over_other_members(p):
    ds = fake_dataset(p)
    members = {0: {0, 1, 2}, 3: {3, 4, 5, 6}}
    drawn = total = 0
    picks: Counter = Counter()
    for seed in range(2000):
        for anchor, group in members.items():
            sources = ds.view_sources(anchor, np.random.default_rng([seed, anchor]))
            total += len(sources)
            for s in sources:
                assert s in group
                if s != anchor:
                    drawn += 1
                    picks[(anchor, s)] += 1
    assert abs(drawn / total - p) < 0.015  # 24,000 draws: a standard error of at most 0.0032
    for anchor, group in members.items():  # uniform over the cluster's other members
        counts = np.array([picks[(anchor, s)] for s in sorted(group - {anchor})], dtype=float)
        assert counts.min() > 0.8 * counts.mean()


def test_singletons_and_unmapped_utterances_fall_back_to_the_anchor():
    ds = fake_dataset(1.0)
    for seed in range(50):
        for anchor in (7, 8, 9):
            assert ds.view_sources(anchor, np.random.default_rng([seed])) == [anchor] * 6
        assert all(s != 0 for s in ds.view_sources(0, np.random.default_rng([seed])))


def test_only_the_selected_views_come_from_the_cluster():
    ds = fake_dataset(1.0, cluster_views="global")
    for seed in range(50):
        sources = ds.view_sources(3, np.random.default_rng([seed]))
        assert all(s != 3 for s in sources[:2]) and sources[2:] == [3] * 4
    batch = {"index": torch.tensor([0, 1]), "view_index": torch.tensor([[1, 0], [0, 0], [0, 1]])}  # (view, sample)
    share = cluster_share(batch, num_global=2)
    assert float(share["cluster_view_share"]) == pytest.approx(3 / 6)
    assert float(share["cluster_view_share_global"]) == pytest.approx(3 / 4)


def test_oracle_labels_only_with_the_explicit_flag(tmp_path):
    data = make_tiny_corpus(str(tmp_path), num_speakers=2, utts_per_speaker=2)
    with pytest.raises(WesvError, match="oracle_labels"):
        read_cluster_map(data, data)
    link = tmp_path / "linked"
    link.mkdir()
    os.symlink(os.path.join(data, "utt2spk"), link / "utt2spk")
    with pytest.raises(WesvError, match="true labels"):
        read_cluster_map(str(link), data)
    assert read_cluster_map(data, data, oracle_labels=True) == read_utt2spk(os.path.join(data, "utt2spk"))
    copy = tmp_path / "oracle"  # the recipe's oracle control: a copy of the true utt2spk, marked
    copy.mkdir()
    (copy / "utt2spk").write_text(open(os.path.join(data, "utt2spk")).read())
    with pytest.raises(WesvError, match="holds no ORACLE_LABELS"):
        read_cluster_map(str(copy), data, oracle_labels=True)
    (copy / "ORACLE_LABELS").write_text("")
    with pytest.raises(WesvError, match="marked as true labels"):
        read_cluster_map(str(copy), data)
    assert read_cluster_map(str(copy), data, oracle_labels=True) == read_utt2spk(os.path.join(data, "utt2spk"))


# ---- progressive refresh: DataLoader workers, resume ---------------------------------------------------------

def write_map(path: str, mapping: dict[str, str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(f"{u} {c}\n" for u, c in sorted(mapping.items()))


def pairs_obey(view_utts: list[str], utt: str, mapping: dict[str, str]) -> bool:
    """Every view is the anchor's own or from another utterance of its cluster in ``mapping``."""
    return all(v == utt or (v in mapping and mapping.get(utt) == mapping[v]) for v in view_utts)


def test_a_refreshed_map_reaches_every_persistent_worker(tmp_path):
    data = make_tiny_corpus(str(tmp_path), num_speakers=2, utts_per_speaker=6, seconds=0.4)
    utts = sorted(read_utt2spk(os.path.join(data, "utt2spk")))
    map_a = {u: f"a{i // 2}" for i, u in enumerate(utts)}  # pairs (0,1), (2,3), ...
    map_b = {u: f"b{(i + 1) // 2}" for i, u in enumerate(utts)}  # pairs (1,2), (3,4), ...: disjoint from A's
    from wesv.data.datadir import read_scp

    cfg = ViewsConfig(num_global=2, global_seconds=0.2, num_local=1, local_seconds=0.1, cluster_data="x",
                      p_same_cluster=1.0, cluster_views="all")
    ds = ViewsDataset(read_scp(os.path.join(data, "wav.scp")), cfg, cluster_map=map_a, cluster_refresh=True)
    ds.cluster_dir = str(tmp_path / "clusters")
    sampler = EpochSampler(ds, 1, 0, seed=0)
    loader = DataLoader(EpochIndexed(ds), batch_size=2, sampler=sampler, num_workers=2, persistent_workers=True,
                        collate_fn=ds.collate_fn, worker_init_fn=worker_init_fn)

    def epoch_batches(epoch: int) -> list[dict]:
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        return list(loader)

    for b in epoch_batches(0):
        for j, utt in enumerate(b["utt"]):
            assert pairs_obey([v[j] for v in b["view_utts"]], utt, map_a)
    write_map(str(tmp_path / "clusters" / "epoch_1" / "utt2spk"), map_b)
    batches = epoch_batches(1)
    assert len(batches) == 6  # 6 batches over 2 workers: each worker served three
    for b in batches:
        for j, utt in enumerate(b["utt"]):
            views = [v[j] for v in b["view_utts"]]
            assert pairs_obey(views, utt, map_b)
            if utt not in (utts[0], utts[-1]):  # B's singletons keep their own crops
                assert all(v != utt for v in views)
    assert ds.cluster_path.endswith(os.path.join("epoch_1", "utt2spk")) and ds.num_clusters() == 7


def progressive_body(exp_dino: str, every: int) -> str:
    return (f"continue_from: {exp_dino}\n  p_same_cluster: 1.0\n  cluster_views: global\n"
            f"  recluster_every: {every}\n  recluster_num_clusters: 3\n  recluster_kmeans: 6\n"
            "  freeze_last_layer_epochs: 0\n")


def test_progressive_refresh_then_resume_reuses_the_refreshed_map(tmp_path, dino_run, monkeypatch):
    data, exp_dino = dino_run
    exp = run(tmp_path, "exp_cdino", config_text(data, "cdino", progressive_body(exp_dino, 2), epochs=1, workers=2))
    refreshed = os.path.join(exp, "clusters", "epoch_0", "utt2spk")
    info = json.load(open(os.path.join(exp, "clusters", "epoch_0", "refresh.json")))
    assert info["num_clusters"] == 3 and info["num_utts_kept"] == 12
    ckpt = torch.load(os.path.join(exp, "checkpoints", "latest.pt"), map_location="cpu", weights_only=False)
    assert ckpt["extra"]["cluster_path"] == os.path.join("clusters", "epoch_0", "utt2spk")
    record = [json.loads(line) for line in open(os.path.join(exp, "metrics.jsonl"))][-1]
    assert record["num_clusters"] == 3 and record["cluster_view_share_global"] > 0 and "recluster_s" in record

    # Replace the refreshed map by a known one: the resumed epoch (not due for a refresh) must train with it.
    utts = sorted(read_utt2spk(os.path.join(data, "utt2spk")))
    known = {u: f"k{i % 2}" for i, u in enumerate(utts)}
    write_map(refreshed, known)

    def no_recluster(*args, **kw):
        raise AssertionError("the resumed run re-clustered instead of reusing the refreshed map")

    monkeypatch.setattr(cdino_mod, "cluster_teacher", no_recluster)
    run(tmp_path, "exp_cdino", config_text(data, "cdino", progressive_body(exp_dino, 2), epochs=2, workers=2),
        resume=True)
    lines = open(os.path.join(exp, "view_pairs", "epoch_2.tsv")).read().splitlines()
    assert lines[0].endswith("map clusters/epoch_0/utt2spk")
    triples = [line.split("\t") for line in lines[1:]]
    assert triples and all(known[a] == known[s] and a != s for a, _, s in triples)
    assert all(int(v) < 2 for _, v, _ in triples)  # cluster_views: global

    # A resume whose refreshed map went missing stops with one line (it would fall back silently).
    os.remove(refreshed)
    text = config_text(data, "cdino", progressive_body(exp_dino, 2), epochs=3, workers=0)
    (tmp_path / "again.yaml").write_text(text)
    with pytest.raises(WesvError, match="refreshed cluster map"):
        train(load_config(str(tmp_path / "again.yaml")), exp, resume=True)


def test_view_report_measures_precision_against_true_labels(tmp_path, dino_run, capsys):
    from wesv.bin import view_report

    data, exp_dino = dino_run
    exp = run(tmp_path, "exp_fixed", config_text(data, "cdino", progressive_body(exp_dino, 1), epochs=1))
    with pytest.raises(SystemExit) as done:
        view_report.main(["--exp-dir", exp, "--truth-utt2spk", os.path.join(data, "utt2spk")])
    assert done.value.code == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    truth = read_utt2spk(os.path.join(data, "utt2spk"))
    lines = open(os.path.join(exp, "view_pairs", "epoch_1.tsv")).read().splitlines()
    triples = [line.split("\t") for line in lines[1:]]
    assert row["drawn"] == len(triples) > 0
    assert row["precision"] == pytest.approx(np.mean([truth[a] == truth[s] for a, _, s in triples]))


# ---- continuation from DINO ----------------------------------------------------------------------------------

def build_cdino(data: str, **kw) -> CDino:
    cfg = CDinoConfig(num_global=2, global_seconds=0.3, num_local=2, local_seconds=0.15, out_dim=32, hidden_dim=16,
                      bottleneck_dim=8, **kw)
    enc_cfg = load_config_text_encoder()
    return CDino(cfg, build_encoder("ecapa_tdnn_small", enc_cfg), DataInfo(num_samples=12))


def load_config_text_encoder() -> dict:
    import yaml

    enc = yaml.safe_load("encoder:\n  " + TINY_ENCODER)["encoder"]
    enc.pop("name")
    return enc


def test_continuation_restores_student_teacher_heads_and_centre(dino_run):
    data, exp_dino = dino_run
    state = torch.load(os.path.join(exp_dino, "checkpoints", "latest.pt"), map_location="cpu",
                       weights_only=False)["method"]
    method = build_cdino(data)
    assert not torch.equal(method.center, state["center"])
    method.load_dino_state(exp_dino)
    own = method.state_dict()
    for prefix in ("encoder.", "head.", "teacher_encoder.", "teacher_head.", "center"):
        keys = [k for k in state if k.startswith(prefix)]
        assert keys and all(torch.equal(own[k], state[k]) for k in keys)
    assert state["center"].abs().sum() > 0
    # The teacher is the DINO run's teacher, not a copy of its student.
    w = "layer_1.conv.weight" if "encoder.layer_1.conv.weight" in state else next(
        k[len("encoder."):] for k in state if k.startswith("encoder.") and k.endswith("weight"))
    assert not torch.equal(state[f"encoder.{w}"], state[f"teacher_encoder.{w}"])


def test_continuation_errors_are_one_line(tmp_path, dino_run):
    data, exp_dino = dino_run
    with pytest.raises(WesvError, match=r"out_dim.*|shape mismatch") as err:
        CDino(CDinoConfig(num_global=2, global_seconds=0.3, num_local=2, local_seconds=0.15, out_dim=64,
                          hidden_dim=16, bottleneck_dim=8),
              build_encoder("ecapa_tdnn_small", load_config_text_encoder()),
              DataInfo(num_samples=12)).load_dino_state(exp_dino)
    assert "\n" not in str(err.value) and "shape mismatch" in str(err.value) and "center" in str(err.value)
    foreign = tmp_path / "classifier.pt"
    torch.save({"method": {"encoder.x": torch.zeros(1), "head.weight": torch.zeros(2)},
                "config": {"type": "classifier"}}, foreign)
    with pytest.raises(WesvError, match="not a DINO checkpoint \\(method 'classifier'"):
        build_cdino(data).load_dino_state(str(foreign))
    with pytest.raises(WesvError, match="neither a checkpoint nor an exp dir"):
        build_cdino(data).load_dino_state(str(tmp_path / "nowhere"))
    with pytest.raises(WesvError, match="not a training checkpoint"):
        build_cdino(data).load_dino_state(os.path.join(exp_dino, "encoder.pt"))


def test_recluster_settings_fail_naming_the_keys():
    with pytest.raises(WesvError, match="method.recluster_"):
        build_cdino("", recluster_every=1, p_same_cluster=0.5)  # kmeans_ahc without a number or threshold
    with pytest.raises(WesvError, match="oracle_labels with method.recluster_every"):
        build_cdino("", recluster_every=1, recluster_num_clusters=2, oracle_labels=True)


@pytest.mark.parametrize("recipe,cdino,dino", [("mini", "cdino", "dino"),
                                               ("voxceleb", "cdino_ecapa512", "dino_ecapa512")])
def test_recipe_cdino_configs_continue_their_dino_run(recipe, cdino, dino):
    from dataclasses import fields

    from wesv.methods.dino import DinoConfig

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "egs", recipe, "conf")
    c, d = (load_config(os.path.join(root, f"{name}.yaml")) for name in (cdino, dino))
    assert c.type == "cdino" and c.encoder == d.encoder and (c.data, c.augment) == (d.data, d.augment)
    same = ("num_global", "global_seconds", "num_local", "local_seconds", "out_dim", "hidden_dim", "bottleneck_dim",
            "head_layers", "student_temp", "center_momentum")
    assert {k: getattr(c.method, k) for k in same} == {k: getattr(d.method, k) for k in same}
    assert {f.name for f in fields(DinoConfig)} <= set(vars(c.method))
    assert c.method.continue_from == "exp/dino" and 0 < c.method.p_same_cluster < 1
    assert c.method.cluster_views == "global" and not c.method.oracle_labels
    assert c.trainer.epochs < d.trainer.epochs and c.method.freeze_last_layer_epochs == 0


@pytest.mark.slow
def test_progressive_cdino_under_two_processes(tmp_path):
    """torchrun (gloo): rank 0 re-clusters, every rank trains on the same map; the view pairs cover both ranks."""
    import subprocess
    import sys

    data = make_tiny_corpus(str(tmp_path), num_speakers=3, utts_per_speaker=4, seconds=0.5)
    conf = tmp_path / "conf.yaml"
    conf.write_text(config_text(data, "cdino", "p_same_cluster: 1.0\n  recluster_every: 1\n"
                                "  recluster_num_clusters: 3\n  recluster_kmeans: 6\n", epochs=2))
    exp = tmp_path / "exp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "wesv.bin.train", "--config", str(conf), "--exp-dir", str(exp)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "re-clustered the teacher's embeddings as epoch 2 starts: 3 clusters" in proc.stderr
    mapping = read_utt2spk(str(exp / "clusters" / "epoch_1" / "utt2spk"))
    lines = open(exp / "view_pairs" / "epoch_2.tsv").read().splitlines()
    assert int(lines[0].split()[2]) > 4  # the anchors of both ranks' batches (4 each), gathered by the table
    assert all(mapping[a] == mapping[s] for a, _, s in (line.split("\t") for line in lines[1:]))


@pytest.mark.parametrize("override,needles", [
    (["--method.out_dim", "64"], ("shape mismatch", "center (1, 32) vs (1, 64)", "out_dim")),
    (["--method.continue_from", "ENCODER"], ("not a training checkpoint",)),
])
def test_train_cli_refuses_a_continuation_that_does_not_fit(tmp_path, dino_run, capsys, override, needles):
    from badinput import assert_clean_error, run_entry, tree_digest

    data, exp_dino = dino_run
    conf = tmp_path / "c.yaml"
    conf.write_text(config_text(data, "cdino", f"continue_from: {exp_dino}\n  p_same_cluster: 0.5\n"
                                "  recluster_every: 1\n  recluster_num_clusters: 2\n"))
    before = tree_digest(exp_dino)
    override = [a.replace("ENCODER", os.path.join(exp_dino, "encoder.pt")) for a in override]
    exp = tmp_path / "exp"
    outcome = run_entry("train", ["--config", str(conf), "--exp-dir", str(exp)] + override, capsys)
    assert_clean_error(outcome, *needles)
    assert not exp.exists() and tree_digest(exp_dino) == before
