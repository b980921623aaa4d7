"""Per-sample state (seam 9), synced buffers and the trainer's thread count, without a trainer run."""
import pytest
import torch
from torch import nn

from wesv.errors import WesvError
from wesv.trainer.buffers import resolve_synced_buffers, sync_buffers_
from wesv.trainer.resources import auto_num_threads, count_parameters
from wesv.trainer.sample_state import Column, SampleState, last_occurrence


def table() -> SampleState:
    return SampleState(6, [Column("loss", torch.float32, float("nan"), per_epoch=True),
                           Column("label", torch.int64, -1), Column("gate", torch.bool, False)])


def test_update_writes_rows_by_index_and_a_later_duplicate_wins():
    s = table()
    s.update("loss", torch.tensor([4, 1, 4]), torch.tensor([1.0, 2.0, 3.0]))
    s.update("label", torch.tensor([0, 5]), 7)  # a scalar fills every named row
    assert s["loss"][[1, 4]].tolist() == [2.0, 3.0] and torch.isnan(s["loss"][[0, 2, 3, 5]]).all()
    assert s["label"].tolist() == [7, -1, -1, -1, -1, 7]
    assert last_occurrence(torch.tensor([2, 0, 2, 2])).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="2 values for 3 indices"):
        s.update("loss", torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0]))


def test_start_epoch_resets_only_per_epoch_columns_and_sync_is_identity_in_one_process():
    s = table()
    s.update("loss", torch.tensor([0]), 1.5)
    s.update("gate", torch.tensor([2]), True)
    s.sync()  # no process group
    assert not any(t.any() for t in s.touched.values())
    s.start_epoch()
    assert torch.isnan(s["loss"]).all() and s["gate"].tolist() == [False, False, True, False, False, False]


def test_state_dict_round_trip_and_a_table_of_another_size_is_refused():
    s = table()
    s.update("loss", torch.tensor([3]), 0.25)
    s.update("label", torch.tensor([1, 2]), torch.tensor([9, 8]))
    saved = s.state_dict()
    t = table()
    t.load_state_dict(saved)
    assert all(torch.equal(s[n], t[n]) or (n == "loss" and torch.allclose(s[n], t[n], equal_nan=True))
               for n in ("loss", "label", "gate"))
    t.load_state_dict({})  # checkpoints written before per-sample state: the table keeps its fill
    with pytest.raises(WesvError, match="ckpt.pt: its per-sample state has 6 rows but the training data has 7"):
        SampleState(7, [Column("loss")]).load_state_dict(saved, "ckpt.pt")


def test_synced_buffers_resolve_names_and_prefixes():
    net = nn.Module()
    net.enc = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net.proj = nn.Linear(2, 2)  # no buffers: naming it is fine
    net.register_buffer("center", torch.zeros(3))
    items = resolve_synced_buffers(net, {"enc": "mean", "proj": "mean", "center": "broadcast"})
    assert [(n, m) for n, _, m in items] == [("center", "broadcast"), ("enc.1.running_mean", "mean"),
                                             ("enc.1.running_var", "mean"), ("enc.1.num_batches_tracked", "mean")]
    sync_buffers_(items)  # one process: nothing to do
    with pytest.raises(ValueError, match="'nope'"):
        resolve_synced_buffers(net, {"nope": "mean"})
    with pytest.raises(ValueError, match="mode must be"):
        resolve_synced_buffers(net, {"center": "sum"})


def test_auto_threads_leave_cores_to_workers_and_other_processes():
    assert auto_num_threads(0, cores=2, local_processes=1) == 2
    assert auto_num_threads(4, cores=2, local_processes=1) == 2  # workers run single-threaded
    assert auto_num_threads(2, cores=16, local_processes=2) == 8
    assert auto_num_threads(2, cores=1, local_processes=4) == 1
    assert count_parameters(nn.Linear(3, 2)) == 8
