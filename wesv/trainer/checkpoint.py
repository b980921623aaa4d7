"""Atomic checkpoints (temp file + rename) and the RNG states that make a resumed run repeat the original."""
import glob
import os
import random
import re

import numpy as np
import torch

from wesv.errors import WesvError


def atomic_torch_save(obj, path: str) -> None:
    """``torch.save`` to a temp file in the same dir, then ``os.replace``: a crash never leaves a torn file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def link_or_copy_atomic(src: str, dst: str) -> None:
    """Make ``dst`` hold the same bytes as ``src`` atomically (hard link where the file system allows)."""
    tmp = f"{dst}.tmp.{os.getpid()}"
    if os.path.exists(tmp):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


#: Temp files of the atomic writers: ``latest.pt.tmp.1234``, ``.encoder.pt.tmp.1234.pt``, ``metrics.jsonl.tmp.1234``.
_TEMP = re.compile(r".*\.tmp\.(?P<pid>\d+)(\.pt)?")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(*dirs: str) -> list[str]:
    """Remove the temp files that writers killed mid-write left in ``dirs``; those of live processes stay."""
    removed = []
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            m = _TEMP.fullmatch(name)
            if not m or int(m.group("pid")) == os.getpid() or pid_alive(int(m.group("pid"))):
                continue
            path = os.path.join(d, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint written by the trainer; unreadable files fail naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise WesvError(f"{path}: no checkpoint; train without --resume first") from None
    except Exception as err:  # noqa: BLE001 (torch raises many types for a torn or foreign file)
        raise WesvError(f"{path}: cannot load checkpoint ({type(err).__name__}: {err}); "
                        "use an earlier checkpoints/epoch_N.pt") from None


def epoch_checkpoints(ckpt_dir: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of ``epoch_N.pt`` files, oldest first."""
    out = []
    for path in glob.glob(os.path.join(ckpt_dir, "epoch_*.pt")):
        m = re.fullmatch(r"epoch_(\d+)\.pt", os.path.basename(path))
        if m:
            out.append((int(m.group(1)), path))
    return sorted(out)


def prune_checkpoints(ckpt_dir: str, keep: int) -> None:
    """Keep the newest ``keep`` epoch checkpoints (0 = keep all)."""
    if keep <= 0:
        return
    for _, path in epoch_checkpoints(ckpt_dir)[:-keep]:
        os.remove(path)


def rng_state() -> dict:
    """RNG states of python, numpy, torch and (when present) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
