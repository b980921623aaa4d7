"""Shards: every utterance read exactly once per epoch across 2 ranks × 2 workers; audio and labels intact."""
import collections
import os

import numpy as np
import pytest
import soundfile as sf
from torch.utils.data import DataLoader

from badinput import assert_clean_error, run_entry
from trainer_helpers import make_tiny_corpus
from wesv.data.shards import ShardDataset, read_shard, read_shard_list


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    data = make_tiny_corpus(str(root))  # 24 utterances, 4 speakers
    out = root / "shards"
    for job in (1, 2):  # an array job of 2
        from wesv.bin import make_shards
        with pytest.raises(SystemExit) as stop:
            make_shards.main(["--data", data, "--out", str(out), "--utts-per-shard", "5", "--job", str(job),
                              "--num-jobs", "2"])
        assert stop.value.code == 0
    return data, out


def test_shards_hold_the_audio_keys_and_labels(sharded):
    data, out = sharded
    paths = read_shard_list(str(out / "shards.list"))
    assert len(paths) == 5 and all(os.path.isfile(p) for p in paths)
    wav = dict(line.split() for line in open(os.path.join(data, "wav.scp")))
    spk = dict(line.split() for line in open(os.path.join(data, "utt2spk")))
    seen = []
    for p in paths:
        for meta, wave in read_shard(p):
            ref, _ = sf.read(wav[meta["utt"]], dtype="float32")
            assert np.array_equal(wave, ref) and meta["spk"] == spk[meta["utt"]]
            seen.append(meta["index"])
    assert seen == list(range(24))


@pytest.mark.parametrize("epoch", [0, 1])
def test_each_utterance_once_per_epoch_over_two_ranks_and_two_workers(sharded, epoch):
    _, out = sharded
    counts, orders = collections.Counter(), []
    for rank in (0, 1):
        ds = ShardDataset(str(out / "shards.list"), 1600, rank=rank, world_size=2, seed=3, buffer_size=4)
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=ds.collate_fn)
        utts = []
        for batch in loader:
            assert batch["wave"].shape[1] == 1600 and len(batch["utt"]) == len(batch["index"]) == len(batch["label"])
            assert all(0 <= lab < ds.num_classes == 4 for lab in batch["label"].tolist())
            utts += batch["utt"]
        counts.update(utts)
        orders.append(utts)
    assert len(counts) == 24 and set(counts.values()) == {1}
    # the same epoch reads the same order again; another epoch another one
    again = ShardDataset(str(out / "shards.list"), 1600, rank=1, world_size=2, seed=3, buffer_size=4)
    again.set_epoch(epoch)
    assert [u for b in DataLoader(again, batch_size=3, num_workers=2, collate_fn=again.collate_fn)
            for u in b["utt"]] == orders[1]
    other = ShardDataset(str(out / "shards.list"), 1600, rank=1, world_size=2, seed=3, buffer_size=4)
    other.set_epoch(epoch + 1)
    assert [u for b in DataLoader(other, batch_size=3, num_workers=2, collate_fn=other.collate_fn)
            for u in b["utt"]] != orders[1]


def test_bad_inputs(sharded, tmp_path, capsys):
    data, out = sharded
    assert_clean_error(run_entry("make_shards", ["--data", data, "--out", tmp_path / "s", "--utts-per-shard", 0],
                                 capsys), "--utts-per-shard")
    assert_clean_error(run_entry("make_shards", ["--data", data, "--out", tmp_path / "s", "--job", 3,
                                                 "--num-jobs", 2], capsys), "--job 3")
    from wesv.errors import WesvError
    with pytest.raises(WesvError, match="6 processes"):
        ShardDataset(str(out / "shards.list"), 1600, world_size=6)
    (tmp_path / "bad.tar").write_bytes(b"junk")
    with pytest.raises(WesvError, match="unreadable shard"):
        list(read_shard(str(tmp_path / "bad.tar")))
