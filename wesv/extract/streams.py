"""Embeddings of a feature stream (``face.scp``) by a branch encoder, for fused clustering (seam 11)."""
from __future__ import annotations

import os

import kaldiio
import numpy as np
import torch
from torch import nn

from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger(__name__)


def embed_stream(encoder: nn.Module, frames: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
    """``{utt: embedding}`` of every sequence, in eval mode; sequences of one length share a batch."""
    encoder.eval()
    by_length: dict[int, list[str]] = {}
    for utt, mat in frames.items():
        by_length.setdefault(mat.shape[0], []).append(utt)
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for utts in by_length.values():
            for i in range(0, len(utts), batch_size):
                chunk = utts[i:i + batch_size]
                x = torch.from_numpy(np.stack([frames[u] for u in chunk]).astype(np.float32))
                for u, e in zip(chunk, encoder(x).cpu().numpy()):
                    out[u] = e.astype(np.float32)
    return out


def mean_frames(frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The training-free embedding of a stream: each sequence's mean frame."""
    return {u: m.mean(axis=0).astype(np.float32) for u, m in frames.items()}


def write_stream_embeddings(model: str | None, stream_scp: str, wav_scp: dict[str, str], out: str) -> int:
    """Embed the stream's sequences of the data dir's utterances into ``out/xvector.{ark,scp}`` and ``mean.vec``.

    ``model`` None: the mean frame (before any branch is trained, e.g. for the first fused clustering). Utterances
    without the stream are left out (and counted in the log): clustering fills their block with zeros. Returns the
    number written.
    """
    from wesv.data.streams import read_stream
    from wesv.lock import exclusive_lock
    from wesv.models import load_encoder
    from wesv.scoring.io import write_vector

    frames = {u: m for u, m in read_stream(stream_scp).items() if u in wav_scp}
    if not frames:
        raise WesvError(f"{stream_scp}: none of the data dir's utterances has this stream — give the scp of the "
                        "same utterances")
    os.makedirs(out, exist_ok=True)
    with exclusive_lock(os.path.join(out, ".lock"), f"stream embeddings into {out}"):
        embs = mean_frames(frames) if model is None else embed_stream(load_encoder(model), frames)
        ark, scp = os.path.abspath(os.path.join(out, "xvector.ark")), os.path.join(out, "xvector.scp")
        tmp_ark, tmp_scp = ark + ".tmp", scp + ".tmp"
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            for utt in wav_scp:
                if utt in embs:
                    writer(utt, embs[utt])
        with open(tmp_scp, encoding="utf-8") as f:
            lines = f.read().replace(tmp_ark, ark)
        with open(tmp_scp, "w", encoding="utf-8") as f:
            f.write(lines)
        os.replace(tmp_ark, ark)
        os.replace(tmp_scp, scp)
        write_vector(os.path.join(out, "mean.vec"), np.mean(np.stack(list(embs.values())), axis=0))
    missing = len(wav_scp) - len(embs)
    log.info("%s: %d stream embeddings of %s%s", out, len(embs), stream_scp,
             f"; {missing} utterances have no such stream" if missing else "")
    return len(embs)
