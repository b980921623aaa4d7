"""Export an encoder with its fbank front-end inside: waveform ``(B, T)`` in, embedding ``(B, D)`` out, any B and T.

``Fbank`` is written for speed in eager mode (CPU chunking, in-place ops, a dataclass config), which neither
TorchScript nor the ONNX exporter takes, and tracing would freeze the frame count of the traced length.
``ExportFbank`` recomputes the same eval-mode features with the frame count read from the input at run time;
the network after the front-end is traced (its ops follow the input's length), then scripted together with it.
"""
import os

import torch
from torch import nn

from wesv.errors import WesvError
from wesv.features.fbank import FLT_EPSILON, INT16_SCALE, Fbank

FORMATS = ("torchscript", "onnx")
#: The input's name and the output's in the ONNX graph.
ONNX_INPUT, ONNX_OUTPUT = "wave", "embedding"


class ExportFbank(nn.Module):
    """Eval-mode ``Fbank`` (no dither, no ``lengths``) as plain tensor ops that TorchScript and ONNX accept."""

    def __init__(self, fbank: Fbank):
        super().__init__()
        cfg = fbank.cfg
        self.frame_length = int(cfg.frame_length)
        self.frame_shift = int(cfg.frame_shift)
        self.padded_length = int(cfg.padded_length)
        self.preemphasis = float(cfg.preemphasis)
        self.remove_dc = bool(cfg.remove_dc)
        self.snip_edges = bool(cfg.snip_edges)
        self.cmn = bool(cfg.cmn)
        self.scale = INT16_SCALE
        self.floor = FLT_EPSILON
        self.register_buffer("window", fbank.window.detach().clone())
        self.register_buffer("mel", fbank.mel.detach().clone())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` in [-1, 1] → ``(B, frames, bins)``."""
        sig = wave.float() * self.scale
        length, shift, p = self.frame_length, self.frame_shift, self.preemphasis
        if not self.snip_edges:  # Kaldi's reflected edges, frame i centred on i*shift + shift/2
            n = sig.shape[1]
            num_frames = (n + shift // 2) // shift
            start = shift // 2 - length // 2
            pos = torch.arange(start, start + (num_frames - 1) * shift + length, device=sig.device)
            m = torch.remainder(pos, 2 * n)
            sig = sig[:, torch.where(m >= n, 2 * n - 1 - m, m)]
        raw = sig.unfold(1, length, shift)
        emph = torch.cat([sig[:, :1], sig[:, 1:] - p * sig[:, :-1]], dim=1)
        body = emph.unfold(1, length, shift) * self.window
        first = raw[:, :, :1] * ((1.0 - p) * self.window[0])
        body = torch.cat([first, body[:, :, 1:]], dim=2)
        if self.remove_dc:
            body = body - (1.0 - p) * raw.mean(dim=-1, keepdim=True) * self.window
        body = nn.functional.pad(body, [0, self.padded_length - length])
        spec = torch.fft.rfft(body, dim=-1)
        power = spec.real * spec.real + spec.imag * spec.imag
        feats = torch.log(torch.clamp(torch.matmul(power, self.mel), min=self.floor))
        if self.cmn:
            feats = feats - feats.mean(dim=1, keepdim=True)
        return feats


class _Embed(nn.Module):
    """The encoder after its front-end: ``(B, frames, bins)`` → ``(B, D)``."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(feats, None)


class ExportEncoder(nn.Module):
    """Waveform → embedding in one module: ``ExportFbank`` then the encoder's ``embed``."""

    def __init__(self, encoder: nn.Module, embed: nn.Module | None = None):
        super().__init__()
        if not isinstance(encoder.frontend, Fbank):
            raise WesvError(f"export: the {type(encoder.frontend).__name__} front-end of this encoder cannot be "
                            "exported yet (only fbank front-ends); extract with python -m wesv.bin.extract")
        self.frontend = ExportFbank(encoder.frontend)
        self.net = embed if embed is not None else _Embed(encoder)
        self.min_samples = int(encoder.min_samples)
        self.sample_rate = int(encoder.sample_rate)
        self.embed_dim = int(encoder.embed_dim)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` float waveform in [-1, 1] → ``(B, D)`` embedding."""
        return self.net(self.frontend(wave))


def _example(encoder: nn.Module, seconds: float = 1.5, batch: int = 2) -> torch.Tensor:
    rate = encoder.sample_rate
    return 0.1 * torch.randn(batch, int(seconds * rate), generator=torch.Generator().manual_seed(0))


def to_torchscript(encoder: nn.Module) -> torch.jit.ScriptModule:
    """A scripted waveform → embedding module (eval mode, CPU) whose batch size and length are free."""
    encoder = encoder.eval().cpu()
    with torch.no_grad():
        feats = ExportEncoder(encoder).frontend(_example(encoder))
        traced = torch.jit.trace(_Embed(encoder), feats, check_trace=False)
    return torch.jit.script(ExportEncoder(encoder, traced))


def export_torchscript(encoder: nn.Module, path: str) -> None:
    """Write ``to_torchscript(encoder)`` to ``path`` (temp file, then rename)."""
    module = to_torchscript(encoder)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        module.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_onnx(encoder: nn.Module, path: str) -> None:
    """Write an ONNX graph (input ``wave`` (B, T), output ``embedding`` (B, D); B and T dynamic) to ``path``."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise WesvError("--format onnx needs the onnx and onnxscript packages: pip install -e '.[export]'") from None
    encoder = encoder.eval().cpu()
    module = ExportEncoder(encoder).eval()
    batch, samples = torch.export.Dim("batch", min=1), torch.export.Dim("samples", min=module.min_samples)
    tmp = f"{path}.tmp.{os.getpid()}.onnx"
    try:
        with torch.no_grad():
            program = torch.onnx.export(module, (_example(encoder),), dynamo=True, input_names=[ONNX_INPUT],
                                        output_names=[ONNX_OUTPUT], dynamic_shapes=({0: batch, 1: samples},),
                                        verbose=False)
        program.save(tmp)
        _add_metadata(tmp, module)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _add_metadata(path: str, module: ExportEncoder) -> None:
    """Store sample_rate, min_samples and embed_dim in the ONNX file (read back by ``wesv.deploy.verify``)."""
    import onnx

    model = onnx.load(path)
    for key in ("sample_rate", "min_samples", "embed_dim"):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(getattr(module, key))
    onnx.save(model, path)


def export_encoder_file(encoder: nn.Module, path: str, fmt: str) -> None:
    """Export ``encoder`` to ``path`` in ``fmt`` (one of ``FORMATS``)."""
    if fmt not in FORMATS:
        raise WesvError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    (export_torchscript if fmt == "torchscript" else export_onnx)(encoder, path)
