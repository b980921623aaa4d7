"""MoCo: FIFO queue with wrap-around, logits against a direct computation, one-process Shuffle-BN, momentum update."""
import math

import pytest
import torch
import torch.nn.functional as F
from test_dino import TinyEncoder
from torch import nn

from wesv.methods.moco import Moco, MocoConfig, chunk_sizes, info_nce_logits
from wesv.trainer.method import METHODS, DataInfo

torch.set_num_threads(1)


def make_moco(**kw) -> Moco:
    torch.manual_seed(0)
    base = dict(queue_size=10, proj_dim=4, proj_hidden_dim=8, temperature=0.1, shuffle_bn_chunks=2,
                shuffle_bn_min_chunk=2)
    base.update(kw)
    return Moco(MocoConfig(**base), TinyEncoder(), DataInfo(num_samples=10))


def batch(b: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"views": [torch.randn(b, 300, generator=g), torch.randn(b, 300, generator=g)],
            "index": torch.arange(b), "utt": [f"u{i}" for i in range(b)]}


def test_registered_and_defaults():
    assert METHODS.get("moco").factory is Moco
    cfg = MocoConfig()
    assert (cfg.queue_size, cfg.temperature, cfg.momentum) == (65536, 0.07, 0.999)
    assert (cfg.num_global, cfg.global_seconds, cfg.global_seconds_max) == (2, 2.0, 3.0)
    assert not hasattr(cfg, "num_local") and not hasattr(cfg, "cluster_data")


def test_queue_is_a_fifo_ring_buffer_in_the_state_dict():
    m = make_moco(queue_size=5)
    m._enqueue(torch.full((3, 4), 1.0), torch.tensor([0, 1, 2]))
    assert int(m.queue_ptr) == 3
    m._enqueue(torch.full((3, 4), 2.0), torch.tensor([3, 4, 5]))  # wraps: slots 3, 4, then 0
    assert int(m.queue_ptr) == 1
    assert m.queue[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0, 2.0]
    assert m.queue_index.tolist() == [5, 1, 2, 3, 4]
    m._enqueue(torch.arange(7.0).unsqueeze(1).repeat(1, 4), torch.arange(10, 17))  # more than the queue: last 5
    assert int(m.queue_ptr) == (1 + 7) % 5
    assert m.queue[:, 0].tolist() == [4.0, 5.0, 6.0, 2.0, 3.0]  # key j of this call at slot (1 + j) % 5
    assert m.queue_index.tolist() == [14, 15, 16, 12, 13]  # each key's utterance beside it
    state = m.state_dict()
    assert torch.equal(state["queue"], m.queue) and int(state["queue_ptr"]) == 3
    m2 = make_moco(queue_size=5)
    m2.load_state_dict(state)
    assert torch.equal(m2.queue, m.queue) and int(m2.queue_ptr) == 3 and torch.equal(m2.queue_index, m.queue_index)
    old = {k: v for k, v in state.items() if k != "queue_index"}  # a checkpoint from before queue_index
    m3 = make_moco(queue_size=5)
    m3.load_state_dict(old)
    assert torch.equal(m3.queue, m.queue) and m3.queue_index.tolist() == [-1] * 5


def test_logits_and_loss_match_a_direct_computation():
    torch.manual_seed(3)
    q, k = F.normalize(torch.randn(3, 4), dim=1), F.normalize(torch.randn(3, 4), dim=1)
    queue = F.normalize(torch.randn(5, 4), dim=1)
    logits = info_nce_logits(q, k, queue, 0.07)
    for i in range(3):
        assert logits[i, 0].item() == pytest.approx(sum(q[i, d] * k[i, d] for d in range(4)).item() / 0.07, rel=1e-5)
        for j in range(5):
            assert logits[i, 1 + j].item() == pytest.approx(float(q[i] @ queue[j]) / 0.07, rel=1e-5)
    m = make_moco(temperature=0.07)
    loss, _ = m._loss(q, k, queue)
    direct = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / 0.07)
        neg = sum(math.exp(float(q[i] @ queue[j]) / 0.07) for j in range(5))
        direct += -math.log(pos / (pos + neg)) / 3
    assert loss.item() == pytest.approx(direct, rel=1e-5)


def test_one_process_shuffle_bn_keeps_key_order():
    assert chunk_sizes(6, 2) == [3, 3] and chunk_sizes(7, 3) == [3, 2, 2] and chunk_sizes(3, 4) == [3]
    assert chunk_sizes(32, 4, 16) == [16, 16] and chunk_sizes(64, 4, 16) == [16] * 4 and chunk_sizes(20, 4, 16) == [20]
    m = make_moco()
    x = batch()["views"][1]
    m.key_encoder.bn.eval()  # without batch statistics, shuffling must not change any key
    m.key_head.eval()
    direct = m.key_head(m.key_encoder(x))
    assert torch.allclose(m._encode_keys(x), direct, atol=1e-5)
    m.key_encoder.bn.train()  # with them, each key is normalised by its (random) chunk, not the whole batch
    m.key_head.train()
    torch.manual_seed(0)
    keys = m._encode_keys(x)
    with torch.no_grad():
        whole = m.key_head(m.key_encoder(x))
    assert keys.shape == (6, 4) and torch.allclose(keys.norm(dim=1), torch.ones(6))
    assert not torch.allclose(keys, whole, atol=1e-4)


def test_step_trains_query_only_and_momentum_updates_keys():
    m = make_moco(momentum=0.9, symmetric=True)
    loss, logs = m(batch())
    assert loss.ndim == 0 and 0.0 <= float(logs["moco_acc"]) <= 1.0
    assert int(m.queue_ptr) == 12 % 10  # symmetric: both crops' keys enqueued
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in m.key_encoder.parameters())
    assert m.encoder.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.key_encoder.parameters()]
    m.after_optimizer_step(0, 10)
    for k, k0, q in zip(m.key_encoder.parameters(), before, m.encoder.parameters()):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q, atol=1e-6)
    assert m.export_encoder() is m.encoder



MOCO_TINY = ("global_seconds: 0.25\n  global_seconds_max: 0.3\n  proj_dim: 8\n  proj_hidden_dim: 16\n"
             "  queue_size: 64\n  temperature: 0.1\n  momentum: 0.99\n  shuffle_bn_chunks: 2")


@pytest.mark.parametrize("nproc", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_moco_trains_through_the_trainer(tmp_path, nproc):
    from test_dino import run_training, ssl_config

    exp, records = run_training(tmp_path, ssl_config("TRAIN_DIR", "moco", MOCO_TINY), nproc)
    assert len(records) == 2 and all(math.isfinite(r["loss"]) and 0 <= r["moco_acc"] <= 1 for r in records)
    ckpt = torch.load(f"{exp}/checkpoints/latest.pt", map_location="cpu", weights_only=False)
    # 4 steps × 4 keys on each process: the keys of every process went into the (shared) queue
    assert int(ckpt["method"]["queue_ptr"]) == 4 * 4 * nproc
    queue = ckpt["method"]["queue"]
    assert queue.shape == (64, 8) and torch.allclose(queue.norm(dim=1), torch.ones(64), atol=1e-5)
    # every process's sample indices were gathered with its keys: one distinct utterance per key of a step
    owners = ckpt["method"]["queue_index"]
    assert (owners[:4 * 4 * nproc] >= 0).all() and (owners[4 * 4 * nproc:] == -1).all()
    assert all(len(set(owners[i:i + 4 * nproc].tolist())) == 4 * nproc for i in range(0, 16 * nproc, 4 * nproc))
    assert all("view_overlap" in r for r in records)


def test_queue_entries_of_the_querys_own_utterance_are_masked():
    m = make_moco(queue_size=8)
    m._enqueue(F.normalize(torch.randn(8, 4), dim=1), torch.tensor([0, 1, 2, 3, 4, 5, 0, 7]))  # "last epoch"
    index = torch.tensor([0, 5, 9])
    same = m.queue_index.unsqueeze(0) == index.unsqueeze(1)
    from wesv.methods.moco import same_utterance
    assert torch.equal(same_utterance(index, m.queue_index), same)
    q, k = F.normalize(torch.randn(3, 4), dim=1), F.normalize(torch.randn(3, 4), dim=1)
    logits = info_nce_logits(q, k, m.queue, 0.1, same)
    assert torch.isinf(logits[0, 1 + 0]) and torch.isinf(logits[0, 1 + 6]) and torch.isinf(logits[1, 1 + 5])
    assert torch.isfinite(logits[2]).all() and int(torch.isinf(logits).sum()) == 3
    loss, _ = m._loss(q, k, m.queue, same)
    assert torch.isfinite(loss)
    # the masked loss equals the loss against the queue without those entries
    for i in range(3):
        keep = ~same[i]
        alone, _ = m._loss(q[i:i + 1], k[i:i + 1], m.queue[keep])
        direct = F.cross_entropy(info_nce_logits(q[i:i + 1], k[i:i + 1], m.queue, 0.1, same[i:i + 1]),
                                 torch.zeros(1, dtype=torch.long))
        assert direct.item() == pytest.approx(alone.item(), rel=1e-5)


def test_forward_never_uses_the_querys_own_earlier_key_as_a_negative():
    m = make_moco(queue_size=64)  # the queue holds more than an epoch (6 samples): every query's old key is in it
    b = batch()
    for _ in range(3):  # three "epochs" of the same 6 utterances
        _, logs = m(b)
    assert float(logs["moco_masked"]) > 0
    assert sorted(m.queue_index[m.queue_index >= 0].tolist()) == sorted(list(range(6)) * 3)
    seen = {}
    real = info_nce_logits

    def spy(q, k, queue, t, exclude=None):
        seen["exclude"] = exclude
        return real(q, k, queue, t, exclude)

    import wesv.methods.moco as moco_mod
    moco_mod.info_nce_logits, saved = spy, moco_mod.info_nce_logits
    try:
        m(b)
    finally:
        moco_mod.info_nce_logits = saved
    assert seen["exclude"].sum(1).tolist() == [3] * 6  # each query's 3 old keys are masked, nothing else


def test_local_views_are_rejected_by_name(tmp_path):
    from wesv.config import load_config
    from wesv.errors import WesvError

    cfg = tmp_path / "moco.yaml"
    cfg.write_text("type: moco\ndata:\n  train: data/train\nencoder:\n  name: ecapa_tdnn_small\n"
                   "method:\n  num_global: 2\n  num_local: 2\n")
    with pytest.raises(WesvError, match=r"moco.yaml:8: method.num_local: unknown key"):
        load_config(str(cfg))
