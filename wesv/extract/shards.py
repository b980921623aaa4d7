"""Array-job extraction of one shard to ``xvector.J.ark/scp`` (temp names, then ``.done.J``) and the merge."""
from __future__ import annotations

import glob
import json
import os
import re
import time

import kaldiio
import numpy as np
from torch import nn

from wesv.data.datadir import shard
from wesv.errors import WesvError
from wesv.extract.embed import embed_utterances, encoder_sample_rate, resolve_device
from wesv.log import get_logger
from wesv.scoring.io import read_embeddings, write_vector

log = get_logger(__name__)

#: Default cap on padded audio per batch on CPU: larger batches fall out of cache and run up to 2x slower
#: there (bench/extract_batching.py); on a GPU the batch size alone bounds a batch.
CPU_MAX_BATCH_SECONDS = 20.0


def shard_paths(out: str, job: int) -> dict[str, str]:
    """Final output names of shard ``job``: ark, scp, bad-utterance list and done marker."""
    return {"ark": os.path.join(out, f"xvector.{job}.ark"), "scp": os.path.join(out, f"xvector.{job}.scp"),
            "bad": os.path.join(out, f"bad_utts.{job}"), "done": os.path.join(out, f".done.{job}")}


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


def shard_done(out: str, job: int, num_jobs: int) -> bool:
    """Whether shard ``job`` already finished (its marker exists); a marker from another --num-jobs is an error."""
    path = shard_paths(out, job)["done"]
    if not os.path.exists(path):
        return False
    marker = _read_marker(path)
    if marker.get("num_jobs") != num_jobs:
        raise WesvError(f"{path}: shard {job} was extracted with --num-jobs {marker.get('num_jobs')}, not "
                        f"{num_jobs} — use the same --num-jobs, or delete {out} to start over")
    return True


def extract_shard(encoder: nn.Module, wav_scp: dict[str, str], out: str, job: int = 1, num_jobs: int = 1, *,
                  batch_size: int = 32, chunk_seconds: float | None = None, max_batch_seconds: float | None = None,
                  device: str = "auto", skip_bad: bool = False, model_path: str = "",
                  progress: bool | None = None) -> dict:
    """Embed shard ``job`` of ``num_jobs`` of ``wav_scp`` into ``out``; a shard whose marker exists is skipped.

    ``max_batch_seconds`` caps each batch's padded audio (default ``CPU_MAX_BATCH_SECONDS`` on CPU, none on a GPU;
    0 means no cap). Outputs appear only when the whole shard succeeded: the ark/scp are written under ``.tmp``
    names, renamed, then the ``.done.J`` marker is written. Left-over temp files of a killed run are removed first.
    """
    os.makedirs(out, exist_ok=True)
    paths = shard_paths(out, job)
    if shard_done(out, job, num_jobs):
        log.info("shard %d/%d already done (%s); nothing to do", job, num_jobs, paths["done"])
        return {**_read_marker(paths["done"]), "skipped": True}
    for path in [paths[k] + suffix for k in ("ark", "scp", "bad", "done") for suffix in ("", ".tmp")]:
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
    with open(tmp_ark, "wb") as f:
        for utt, emb in embed_utterances(encoder, utts, on_bad, device=dev, batch_size=batch_size,
                                         chunk_samples=chunk, max_batch_samples=max_batch, progress=progress):
            pos = f.tell()
            kaldiio.save_ark(f, {utt: emb})
            offsets[utt] = pos + len(utt.encode()) + 1  # scp points just past "key "
        f.flush()
        os.fsync(f.fileno())
    _write_text(paths["scp"] + ".tmp", "".join(f"{u} {paths['ark']}:{offsets[u]}\n" for u in utts if u in offsets))
    _write_text(paths["bad"] + ".tmp", "".join(f"{u} {r}\n" for u, r in bad))
    os.replace(tmp_ark, paths["ark"])
    os.replace(paths["scp"] + ".tmp", paths["scp"])
    os.replace(paths["bad"] + ".tmp", paths["bad"])
    dt = time.perf_counter() - t0
    marker = {"job": job, "num_jobs": num_jobs, "num_utts": len(offsets), "num_bad": len(bad),
              "model": model_path, "seconds": round(dt, 3)}
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
    utterance of the data dir not listed as bad, and write ``mean.vec`` (the mean embedding)."""
    if num_jobs < 1:
        raise WesvError(f"--num-jobs must be at least 1, got {num_jobs}")
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
    lines: list[str] = []
    bad: list[str] = []
    for j in range(1, num_jobs + 1):
        p = shard_paths(out, j)
        with open(p["scp"], encoding="utf-8") as f:
            lines += [line for line in f if line.strip()]
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
    _, matrix = read_embeddings(os.path.join(out, "xvector.scp"))
    write_vector(os.path.join(out, "mean.vec"), matrix.mean(axis=0, dtype=np.float64))
    if bad:
        log.warning("%d utterances had bad audio and have no embedding; listed in %s", len(bad),
                    os.path.join(out, "bad_utts"))
    log.info("merged %d shards: %d embeddings (dim %d) → %s; mean → mean.vec", num_jobs, len(got),
             matrix.shape[1], os.path.join(out, "xvector.scp"))
    return {"num_embeddings": len(got), "num_bad": len(bad), "dim": int(matrix.shape[1])}

