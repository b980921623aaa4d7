"""Same speaker or not: embed two recordings with a trained model and compare the cosine score to a threshold.

The model is a wesv ``encoder.pt``, a TorchScript file or an ONNX file written by ``python -m wesv.bin.export``;
the threshold and the scoring (mean subtraction) come from the ``thresholds.json`` evaluation stored beside it.
"""
import os
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from wesv.data.audio import load_audio
from wesv.data.textfile import read_text_lines
from wesv.errors import WesvError, where
from wesv.scoring.cosine import normalize


@dataclass
class Embedder:
    """A waveform → embedding function with the sample rate and the shortest input the model takes."""

    embed: Callable[[np.ndarray], np.ndarray]
    sample_rate: int
    min_samples: int
    path: str

    def __call__(self, spec: str) -> np.ndarray:
        """Load ``spec`` (a file, Kaldi pipe or ark) and embed it: ``(D,)`` float32."""
        wave = load_audio(spec, self.sample_rate)
        if len(wave) < self.min_samples:
            raise WesvError(f"{spec}: only {len(wave)} samples, the model needs at least {self.min_samples} "
                            f"({self.min_samples / self.sample_rate:.3f} s)")
        return np.asarray(self.embed(wave), dtype=np.float32).reshape(-1)


def _is_torchscript(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/")[1:2] == ["code"] for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_embedder(path: str) -> Embedder:
    """An ``Embedder`` for a wesv encoder file, a TorchScript export or an ONNX export (CPU)."""
    if not os.path.isfile(path):
        raise WesvError(f"{path}: model file not found; give --model-dir with encoder.pt or --model FILE")
    if path.endswith(".onnx"):
        return _onnx_embedder(path)
    if _is_torchscript(path):
        module = torch.jit.load(path, map_location="cpu").eval()
        rate, min_samples = int(module.sample_rate), int(module.min_samples)
    else:
        from wesv.models import load_encoder

        module = load_encoder(path)
        rate, min_samples = int(module.sample_rate), int(module.min_samples)

    def embed(wave: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(wave)[None]).numpy()

    return Embedder(embed, rate, min_samples, path)


def _onnx_embedder(path: str) -> Embedder:
    try:
        import onnxruntime as ort
    except ImportError:
        raise WesvError(f"{path}: an ONNX model needs onnxruntime: pip install -e '.[export]'") from None
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 (onnxruntime raises its own types for bad files)
        raise WesvError(f"{path}: not a readable ONNX model ({err})") from None
    meta = session.get_modelmeta().custom_metadata_map
    name = session.get_inputs()[0].name

    def embed(wave: np.ndarray) -> np.ndarray:
        return session.run(None, {name: wave[None].astype(np.float32)})[0]

    return Embedder(embed, int(meta.get("sample_rate", 16000)), int(meta.get("min_samples", 400)), path)


def read_pairs(path: str) -> list[tuple[str, str, int]]:
    """``a b`` lines of a pairs file: ``(a, b, line number)``; blank lines and ``#`` comments are skipped."""
    pairs = []
    for i, line in enumerate(read_text_lines(path, "pairs", "give lines 'a.wav b.wav'"), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise WesvError(f"{where(path, i)}: expected 'a.wav b.wav', got {len(fields)} field(s)")
        pairs.append((fields[0], fields[1], i))
    if not pairs:
        raise WesvError(f"{path}: no pairs; give lines 'a.wav b.wav'")
    return pairs


def cosine_score(a: np.ndarray, b: np.ndarray, mean: np.ndarray | None = None) -> float:
    """Cosine score of two embeddings after subtracting ``mean``: the same arithmetic as ``wesv.bin.score``."""
    x = normalize(np.stack([a, b]), mean)
    return float(np.dot(x[0], x[1]))


def verify_pairs(embedder: Embedder, pairs: list[tuple[str, str]], threshold: float,
                 mean: np.ndarray | None = None) -> list[tuple[str, str, float, bool]]:
    """``(a, b, score, same)`` per pair; each file is embedded once."""
    cache: dict[str, np.ndarray] = {}

    def emb(spec: str) -> np.ndarray:
        if spec not in cache:
            cache[spec] = embedder(spec)
        return cache[spec]

    out = []
    for a, b in pairs:
        score = cosine_score(emb(a), emb(b), mean)
        out.append((a, b, score, score >= threshold))
    return out
