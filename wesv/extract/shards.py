"""Array-job extraction of one shard to ``xvector.J.ark/scp`` (temp names, then ``.done.J``) and the merge."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import time
from typing import Callable

import kaldiio
import numpy as np
from torch import nn

from wesv.data.datadir import shard, split_indices
from wesv.errors import WesvError
from wesv.extract.embed import embed_utterances, encoder_sample_rate, resolve_device
from wesv.lock import exclusive_lock
from wesv.log import get_logger
from wesv.scoring.io import read_embeddings, resolve_ark, write_vector

log = get_logger(__name__)

#: Default cap on padded audio per batch on CPU: larger batches fall out of cache and run up to 2x slower
#: there (bench/extract_batching.py); on a GPU the batch size alone bounds a batch.
CPU_MAX_BATCH_SECONDS = 20.0
ON_MISMATCH = ("redo", "fail")
MERGED = ("xvector.scp", "bad_utts", "mean.vec", "fingerprint")  # outputs of the merge, stale once a shard changes


def shard_paths(out: str, job: int) -> dict[str, str]:
    """Final output names of shard ``job``: ark, scp, bad-utterance list, done marker and lock."""
    return {"ark": os.path.join(out, f"xvector.{job}.ark"), "scp": os.path.join(out, f"xvector.{job}.scp"),
            "bad": os.path.join(out, f"bad_utts.{job}"), "done": os.path.join(out, f".done.{job}"),
            "lock": os.path.join(out, f".lock.{job}")}


def file_sha1(path: str) -> str:
    """sha1 of a file's content."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model_path: str) -> dict:
    """What identifies the encoder file: its path, size, mtime and content sha1 (only size and sha1 compared)."""
    if not os.path.isfile(model_path):
        raise WesvError(f"{model_path}: no such encoder file — give --model-dir (holding encoder.pt) or --model "
                        "PATH of a trained model")
    st = os.stat(model_path)
    return {"path": os.path.abspath(model_path), "size": st.st_size, "mtime": st.st_mtime,
            "sha1": file_sha1(model_path)}


def module_fingerprint(encoder: nn.Module) -> dict:
    """What identifies an encoder given as a module (no file): the sha1 of its parameters and buffers."""
    h = hashlib.sha1()
    for name, tensor in encoder.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {"path": "", "size": 0, "mtime": 0, "sha1": h.hexdigest()}


def extraction_fingerprint(model: dict, wav_scp: dict[str, str], job: int, num_jobs: int,
                           chunk_seconds: float | None, allow_truncated: bool = False) -> dict:
    """The ``.done.J`` fingerprint: the model, the data (sha1 of wav.scp's entries), the shard and the options
    that change the embeddings (the batch size and device do not)."""
    h = hashlib.sha1()
    for utt, spec in wav_scp.items():
        h.update(f"{utt} {spec}\n".encode())
    start, end = split_indices(len(wav_scp), num_jobs)[job - 1]
    return {"model": model, "data": {"wav_scp_sha1": h.hexdigest(), "num_utts": len(wav_scp)},
            "shard": [start, end], "options": {"chunk_seconds": chunk_seconds, "allow_truncated": allow_truncated}}


def fingerprint_change(old: dict | None, new: dict, shard: bool = True) -> str | None:
    """What differs between two fingerprints, in words (None when they match)."""
    if not old:
        return "no fingerprint (done by an older wesv)"
    changes = []
    om, nm = old.get("model", {}), new["model"]
    if (om.get("sha1"), om.get("size")) != (nm["sha1"], nm["size"]):
        changes.append(f"another model ({om.get('path') or 'an in-memory encoder'} sha1 {str(om.get('sha1'))[:10]}, "
                       f"now {nm['path'] or 'an in-memory encoder'} sha1 {nm['sha1'][:10]})")
    if old.get("data") != new["data"]:
        changes.append("another wav.scp (its entries changed)")
    if shard and old.get("shard") != new["shard"]:
        changes.append(f"other shard bounds ({old.get('shard')}, now {new['shard']})")
    if old.get("options") != new["options"]:
        changes.append(f"other options ({old.get('options')}, now {new['options']})")
    return "; ".join(changes) or None


def _read_marker(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise WesvError(f"{path}: unreadable done marker ({err}) — delete it to re-run that shard") from err


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def shard_done(out: str, job: int, num_jobs: int, fingerprint: dict | None = None,
               on_mismatch: str = "redo") -> bool:
    """Whether shard ``job`` already finished (its marker exists) with this ``fingerprint``; a marker from another
    --num-jobs is an error. A marker with another fingerprint (another model, wav.scp or options) means "not done"
    with a log line, or an error when ``on_mismatch`` is ``fail``."""
    if on_mismatch not in ON_MISMATCH:
        raise WesvError(f"--on-mismatch {on_mismatch}: choose one of {', '.join(ON_MISMATCH)}")
    path = shard_paths(out, job)["done"]
    if not os.path.exists(path):
        return False
    marker = _read_marker(path)
    if marker.get("num_jobs") != num_jobs:
        raise WesvError(f"{path}: shard {job} was extracted with --num-jobs {marker.get('num_jobs')}, not "
                        f"{num_jobs} — use the same --num-jobs, or delete {out} to start over")
    if fingerprint is None:
        return True
    change = fingerprint_change(marker.get("fingerprint"), fingerprint)
    if change is None:
        return True
    if on_mismatch == "fail":
        raise WesvError(f"{path}: shard {job} was extracted with {change} — pass --on-mismatch redo to extract it "
                        "again, or choose another --out")
    log.warning("shard %d/%d in %s was extracted with %s; extracting it again", job, num_jobs, out, change)
    return False


def extract_shard(encoder: nn.Module | Callable[[], nn.Module], wav_scp: dict[str, str], out: str, job: int = 1,
                  num_jobs: int = 1, *, batch_size: int = 32, chunk_seconds: float | None = None,
                  max_batch_seconds: float | None = None, device: str = "auto", skip_bad: bool = False,
                  model_path: str = "", on_mismatch: str = "redo", allow_truncated: bool = False,
                  progress: bool | None = None) -> dict:
    """Embed shard ``job`` of ``num_jobs`` of ``wav_scp`` into ``out``; a shard done with the same fingerprint
    (model, data, shard, options) is skipped.

    ``encoder`` is a module, or a function that loads it (called only when the shard is not done). The model is
    fingerprinted by the sha1 of ``model_path`` when given, else of the module's parameters. ``out/.lock.J`` is held
    meanwhile: a second process on the same shard fails at once naming the first's pid. ``max_batch_seconds`` caps
    each batch's padded audio (default ``CPU_MAX_BATCH_SECONDS`` on CPU, none on a GPU; 0 means no cap). Outputs
    appear only when the whole shard succeeded: the ark/scp are written under ``.tmp`` names, renamed, then the
    ``.done.J`` marker is written. Left-over temp files of a killed run are removed first.
    """
    os.makedirs(out, exist_ok=True)
    paths = shard_paths(out, job)
    if on_mismatch not in ON_MISMATCH:
        raise WesvError(f"--on-mismatch {on_mismatch}: choose one of {', '.join(ON_MISMATCH)}")
    shard_done(out, job, num_jobs)  # a marker of another --num-jobs fails before anything is loaded
    with exclusive_lock(paths["lock"], f"shard {job}/{num_jobs} of {out}"):
        model = model_fingerprint(model_path) if model_path else None
        if model is None and not isinstance(encoder, nn.Module):
            encoder = encoder()
        if model is None:
            model = module_fingerprint(encoder)
        fingerprint = extraction_fingerprint(model, wav_scp, job, num_jobs, chunk_seconds, allow_truncated)
        if shard_done(out, job, num_jobs, fingerprint, on_mismatch):
            log.info("shard %d/%d already done (%s); nothing to do", job, num_jobs, paths["done"])
            return {**_read_marker(paths["done"]), "skipped": True}
        if not isinstance(encoder, nn.Module):
            encoder = encoder()
        return _extract(encoder, wav_scp, out, job, num_jobs, paths, fingerprint, batch_size=batch_size,
                        chunk_seconds=chunk_seconds, max_batch_seconds=max_batch_seconds, device=device,
                        skip_bad=skip_bad, model_path=model_path, allow_truncated=allow_truncated,
                        progress=progress)


def _extract(encoder: nn.Module, wav_scp: dict[str, str], out: str, job: int, num_jobs: int, paths: dict[str, str],
             fingerprint: dict, *, batch_size: int, chunk_seconds: float | None, max_batch_seconds: float | None,
             device: str, skip_bad: bool, model_path: str, allow_truncated: bool, progress: bool | None) -> dict:
    finished = os.path.exists(paths["done"])  # a shard redone for another fingerprint keeps it until replaced
    for path in [paths[k] + suffix for k in ("ark", "scp", "bad", "done") for suffix in ("", ".tmp")
                 if suffix or not finished]:
        if os.path.exists(path):
            log.info("removing %s left by an unfinished run", path)
            os.remove(path)
    utts = shard(wav_scp, job, num_jobs)
    dev = resolve_device(device)
    encoder = encoder.to(dev)
    sample_rate = encoder_sample_rate(encoder)
    chunk = round(chunk_seconds * sample_rate) if chunk_seconds else None
    if max_batch_seconds is None:
        max_batch_seconds = CPU_MAX_BATCH_SECONDS if dev.type == "cpu" else 0.0
    max_batch = round(max_batch_seconds * sample_rate) if max_batch_seconds > 0 else None
    bad: list[tuple[str, str]] = []

    def on_bad(utt: str, reason: str) -> None:
        if not skip_bad:
            what = reason if f"'{utt}'" in reason else f"utterance {utt}: {reason}"
            raise WesvError(f"{what} — fix or remove it (wav.scp), or pass --skip-bad to list it in {paths['bad']} "
                            "and go on")
        log.warning("skipping utterance %s: %s", utt, reason)
        bad.append((utt, " ".join(reason.split())))

    t0 = time.perf_counter()
    offsets: dict[str, int] = {}
    tmp_ark = paths["ark"] + ".tmp"
    try:
        with open(tmp_ark, "wb") as f:
            for utt, emb in embed_utterances(encoder, utts, on_bad, device=dev, batch_size=batch_size,
                                             chunk_samples=chunk, max_batch_samples=max_batch, progress=progress,
                                             allow_truncated=allow_truncated):
                pos = f.tell()
                kaldiio.save_ark(f, {utt: emb})
                offsets[utt] = pos + len(utt.encode()) + 1  # scp points just past "key "
            f.flush()
            os.fsync(f.fileno())
    except WesvError:  # bad audio: nothing of this run stays behind (a kill leaves the temp file for the next run)
        os.remove(tmp_ark)
        raise
    ark = os.path.abspath(paths["ark"])  # absolute: the scp works from any directory
    _write_text(paths["scp"] + ".tmp", "".join(f"{u} {ark}:{offsets[u]}\n" for u in utts if u in offsets))
    _write_text(paths["bad"] + ".tmp", "".join(f"{u} {r}\n" for u, r in bad))
    for path in [paths["done"]] + [os.path.join(out, name) for name in MERGED]:
        if os.path.exists(path):  # the old marker and merged outputs no longer describe this shard
            log.info("removing %s (shard %d is being replaced)", path, job)
            os.remove(path)
    os.replace(tmp_ark, paths["ark"])
    os.replace(paths["scp"] + ".tmp", paths["scp"])
    os.replace(paths["bad"] + ".tmp", paths["bad"])
    dt = time.perf_counter() - t0
    marker = {"job": job, "num_jobs": num_jobs, "num_utts": len(offsets), "num_bad": len(bad),
              "model": model_path, "seconds": round(dt, 3), "fingerprint": fingerprint}
    _write_text(paths["done"], json.dumps(marker) + "\n")
    log.info("shard %d/%d: %d embeddings, %d bad, %.1f s (%.1f utt/s) → %s", job, num_jobs, len(offsets),
             len(bad), dt, len(offsets) / max(dt, 1e-9), paths["scp"])
    return {**marker, "skipped": False}


def read_bad_utts(path: str) -> list[str]:
    """Utterance ids (first column) of a ``bad_utts`` file."""
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def merge_shards(out: str, num_jobs: int, wav_scp: dict[str, str], wav_scp_path: str = "wav.scp") -> dict:
    """Concatenate ``xvector.{1..N}.scp`` into ``xvector.scp`` (and ``bad_utts``), check it covers every
    utterance of the data dir not listed as bad and that every shard has the same fingerprint (model, data,
    options; written to ``fingerprint``), and write ``mean.vec`` (the mean embedding). Ark paths are made
    absolute. ``out/.lock.merge`` is held meanwhile."""
    if num_jobs < 1:
        raise WesvError(f"--num-jobs must be at least 1, got {num_jobs}")
    if not os.path.isdir(out):
        raise WesvError(f"{out}: no such extraction dir — run extraction (python -m wesv.bin.extract) first")
    with exclusive_lock(os.path.join(out, ".lock.merge"), f"the merge of {out}"):
        return _merge(out, num_jobs, wav_scp, wav_scp_path)


def _absolute_scp_line(line: str, scp: str) -> str:
    """``key ark:offset`` with the ark path made absolute (a relative one resolved as ``read_embeddings`` does)."""
    key, _, value = line.strip().partition(" ")
    ark, sep, offset = value.strip().rpartition(":")
    if sep and offset.isdigit() and ark and not os.path.isabs(ark):
        value = f"{resolve_ark(ark, scp)}:{offset}"
    return f"{key} {value.strip()}\n"


def _merge(out: str, num_jobs: int, wav_scp: dict[str, str], wav_scp_path: str) -> dict:
    missing = [j for j in range(1, num_jobs + 1) if not os.path.exists(shard_paths(out, j)["done"])]
    if missing:
        jobs = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise WesvError(f"{out}: shards {jobs} of {num_jobs} are not finished (no .done marker) — run extraction "
                        "for them (a resubmitted array job redoes only those)")
    extra = sorted(int(m.group(1)) for p in glob.glob(os.path.join(out, ".done.*"))
                   if (m := re.fullmatch(r"\.done\.(\d+)", os.path.basename(p))) and int(m.group(1)) > num_jobs)
    for j in [1] + extra[:1]:
        marker = _read_marker(shard_paths(out, j)["done"])
        if marker.get("num_jobs") != num_jobs:
            raise WesvError(f"{shard_paths(out, j)['done']}: shards were extracted with --num-jobs "
                            f"{marker.get('num_jobs')}, not {num_jobs} — merge with that number")
    first = _read_marker(shard_paths(out, 1)["done"]).get("fingerprint")
    for j in range(2, num_jobs + 1):
        done = shard_paths(out, j)["done"]
        fp = _read_marker(done).get("fingerprint")
        change = (None if fp == first else fingerprint_change(first, fp, shard=False) if first and fp else
                  "a fingerprint only one of them has (an older wesv)")
        if change is not None:
            raise WesvError(f"{done}: shard {j} differs from shard 1: {change} — extract every shard with the same "
                            f"model, data and options (delete {done} and extract shard {j} again)")
    lines: list[str] = []
    bad: list[str] = []
    for j in range(1, num_jobs + 1):
        p = shard_paths(out, j)
        with open(p["scp"], encoding="utf-8") as f:
            lines += [_absolute_scp_line(line, p["scp"]) for line in f if line.strip()]
        bad += read_bad_utts(p["bad"]) if os.path.exists(p["bad"]) else []
    got = [line.split(maxsplit=1)[0] for line in lines]
    expected = set(wav_scp) - set(bad)
    have = set(got)
    if len(got) != len(have):
        raise WesvError(f"{out}: an utterance appears in two shards — delete {out} and extract again")
    if have != expected:
        lost = [u for u in wav_scp if u in expected and u not in have]
        unknown = sorted(have - set(wav_scp))
        detail = (f"{len(lost)} utterances of {wav_scp_path} have no embedding and are not in bad_utts "
                  f"(first: {', '.join(lost[:5])})" if lost else
                  f"{len(unknown)} embeddings name utterances not in {wav_scp_path} (first: {', '.join(unknown[:5])})")
        raise WesvError(f"{out}: {len(got)} embeddings, expected {len(expected)} ({len(wav_scp)} utterances, "
                        f"{len(bad)} bad): {detail} — extract with the same data dir, or delete {out} and re-run")
    _write_text(os.path.join(out, "xvector.scp"), "".join(lines))
    _write_text(os.path.join(out, "bad_utts"), "".join(f"{u}\n" for u in bad))
    if first is not None:
        common = {k: v for k, v in first.items() if k != "shard"}
        _write_text(os.path.join(out, "fingerprint"), json.dumps(common, indent=2) + "\n")
    _, matrix = read_embeddings(os.path.join(out, "xvector.scp"))
    write_vector(os.path.join(out, "mean.vec"), matrix.mean(axis=0, dtype=np.float64))
    if bad:
        log.warning("%d utterances had bad audio and have no embedding; listed in %s", len(bad),
                    os.path.join(out, "bad_utts"))
    log.info("merged %d shards: %d embeddings (dim %d) → %s; mean → mean.vec", num_jobs, len(got),
             matrix.shape[1], os.path.join(out, "xvector.scp"))
    return {"num_embeddings": len(got), "num_bad": len(bad), "dim": int(matrix.shape[1])}
