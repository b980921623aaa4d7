"""Resume only the run that the checkpoint holds: a changed model, data, augmentation or optimisation is refused.

The recipes always pass ``--resume``, so an edited config that reruns a stage would otherwise continue the old
run with the new settings mixed in (a changed batch size resumed "at epoch 1, batch 7" of 4-step epochs).
"""
from typing import Any

from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.trainer")

#: Keys that change how a run is executed or reported, never what it computes: they may differ on resume.
SAFE_KEYS = frozenset({
    "data.num_workers", "data.prefetch_factor", "data.persistent_workers", "data.pin_memory",
    "trainer.device", "trainer.progress", "trainer.log_every", "trainer.save_every_epochs",
    "trainer.save_every_steps", "trainer.keep_checkpoints", "trainer.cudnn_benchmark",
    "trainer.find_unused_parameters", "trainer.preflight", "trainer.resume_changes", "trainer.num_threads",
    # validation only measures (never steers training): it may be turned on, off or changed on resume
    "validation", "validation.data", "validation.every", "validation.max_utts", "validation.seed",
})

#: ``trainer.epochs`` may grow: training continues, the lr schedule stretched to the new total from the next step.
GROWABLE = "trainer.epochs"


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists and other values are leaves."""
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(saved: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ between two config mappings (a key on one side only counts)."""
    a, b = flatten(saved), flatten(current)
    return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def _show(flat: dict, key: str) -> str:
    return repr(flat[key]) if key in flat else "unset"


def check_resume_config(saved: dict | None, current: dict, ckpt_path: str, exp_dir: str,
                        allowed: list[str] | tuple[str, ...] = ()) -> None:
    """Raise one ``WesvError`` line naming the keys that differ from the checkpoint's config, beyond the safe ones.

    ``allowed`` (``trainer.resume_changes``) lists keys the user deliberately changes for this resume, e.g.
    ``[optim.lr, optim.grad_clip]`` after a non-finite loss; they pass with a warning.
    """
    if saved is None:
        log.warning("%s holds no config (written by an older wesv): the resumed config is not checked", ckpt_path)
        return
    a, b = flatten(saved), flatten(current)
    diff = changed_keys(saved, current)
    safe = [k for k in diff if k in SAFE_KEYS]
    grown = [k for k in diff if k == GROWABLE and isinstance(a.get(k), int) and isinstance(b.get(k), int)
             and b[k] > a[k]]
    chosen = [k for k in diff if k in allowed and k not in safe and k not in grown]
    bad = [k for k in diff if k not in safe and k not in grown and k not in chosen]
    if bad:
        shown = ", ".join(f"{k} {_show(a, k)} → {_show(b, k)}" for k in bad[:6])
        more = f" (+{len(bad) - 6} more)" if len(bad) > 6 else ""
        raise WesvError(f"{ckpt_path}: the config differs from the run being resumed in {shown}{more}; use a new "
                        f"--exp-dir (or delete {exp_dir} to train it again from scratch), restore the old values, "
                        "or list the keys in --trainer.resume_changes to resume with them anyway")
    if safe:
        log.info("resuming with changed run settings (allowed): %s",
                 ", ".join(f"{k} {_show(a, k)} → {_show(b, k)}" for k in safe))
    if grown:
        log.info("trainer.epochs %s → %s: training continues; the lr schedule is recomputed for the new total from "
                 "the next step", a[GROWABLE], b[GROWABLE])
    if chosen:
        log.warning("resuming with changed settings listed in trainer.resume_changes: %s",
                    ", ".join(f"{k} {_show(a, k)} → {_show(b, k)}" for k in chosen))
