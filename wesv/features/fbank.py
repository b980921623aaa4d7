"""Kaldi-compatible log-mel filterbank features in pure torch, batched, on any device."""
import math
from dataclasses import dataclass

import torch

from wesv.errors import WesvError
from wesv.features.frontend import FrontEnd

#: Kaldi reads int16 samples; waveforms here are floats in [-1, 1].
INT16_SCALE = 32768.0
#: Kaldi's log floor for fbank (``std::numeric_limits<float>::epsilon()``).
FLT_EPSILON = float(torch.finfo(torch.float32).eps)
#: Frames per CPU pass (see Fbank.forward).
CPU_CHUNK_FRAMES = 4096
WINDOWS = ("povey", "hamming", "hann", "hanning", "rectangular", "blackman")


@dataclass
class FbankConfig:
    """Options of Kaldi's ``compute-fbank-feats`` that speaker recipes use, plus utterance-level CMN."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 1.0  # applied only in training mode; 0 disables it
    preemphasis: float = 0.97
    remove_dc: bool = True
    window: str = "povey"
    snip_edges: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from Nyquist, as Kaldi
    cmn: bool = True
    round_to_power_of_two: bool = True
    blackman_coeff: float = 0.42

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise WesvError(f"fbank: unknown window {self.window!r}; use one of {', '.join(WINDOWS)}")
        nyquist = self.sample_rate / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not (0 <= self.low_freq < high <= nyquist):
            raise WesvError(
                f"fbank: need 0 <= low_freq < high_freq <= Nyquist, got low_freq={self.low_freq} "
                f"high_freq={self.high_freq} (-> {high}) at sample_rate={self.sample_rate}"
            )
        if self.num_mel_bins < 3:
            raise WesvError(f"fbank: num_mel_bins must be >= 3, got {self.num_mel_bins}")
        if self.frame_length < 2 or self.frame_shift < 1:
            raise WesvError("fbank: frame_length_ms / frame_shift_ms give frames shorter than 2 samples")

    @property
    def frame_length(self) -> int:
        """Window length in samples (Kaldi: ``sample_rate * ms / 1000`` truncated)."""
        return int(self.sample_rate * 0.001 * self.frame_length_ms)

    @property
    def frame_shift(self) -> int:
        """Frame shift in samples."""
        return int(self.sample_rate * 0.001 * self.frame_shift_ms)

    @property
    def padded_length(self) -> int:
        """FFT size: the next power of two above the window (Kaldi's ``round_to_power_of_two``)."""
        n = self.frame_length
        return 1 << (n - 1).bit_length() if self.round_to_power_of_two else n


def feature_window(cfg: FbankConfig) -> torch.Tensor:
    """The analysis window, as Kaldi's ``FeatureWindowFunction`` (float64)."""
    n = cfg.frame_length
    i = torch.arange(n, dtype=torch.float64)
    a = 2 * math.pi / (n - 1)
    if cfg.window == "hanning":
        return 0.5 - 0.5 * torch.cos(a * i)
    if cfg.window == "hann":  # periodic, as kaldi-native-fbank's "hann" (Kaldi itself only has "hanning")
        return 0.5 - 0.5 * torch.cos(2 * math.pi / n * i)
    if cfg.window == "hamming":
        return 0.54 - 0.46 * torch.cos(a * i)
    if cfg.window == "povey":
        return (0.5 - 0.5 * torch.cos(a * i)).pow(0.85)
    if cfg.window == "blackman":
        c = cfg.blackman_coeff
        return c - 0.5 * torch.cos(a * i) + (0.5 - c) * torch.cos(2 * a * i)
    return torch.ones(n, dtype=torch.float64)


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log(1.0 + f / 700.0)


def mel_matrix(cfg: FbankConfig) -> torch.Tensor:
    """Triangular mel filters as Kaldi's ``MelBanks``: ``(padded/2 + 1, num_mel_bins)``, Nyquist row zero."""
    n_fft = cfg.padded_length
    nyquist = cfg.sample_rate / 2
    high = cfg.high_freq if cfg.high_freq > 0 else nyquist + cfg.high_freq
    mel_low, mel_high = _mel(torch.tensor(cfg.low_freq, dtype=torch.float64)), _mel(
        torch.tensor(high, dtype=torch.float64)
    )
    delta = (mel_high - mel_low) / (cfg.num_mel_bins + 1)
    b = torch.arange(cfg.num_mel_bins, dtype=torch.float64)[None, :]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = _mel(torch.arange(n_fft // 2, dtype=torch.float64) * (cfg.sample_rate / n_fft))[:, None]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = torch.where(mel <= center, up, down)
    weights = torch.where((mel > left) & (mel < right), weights, torch.zeros(()))
    return torch.cat([weights, torch.zeros(1, cfg.num_mel_bins, dtype=torch.float64)])


class Fbank(FrontEnd):
    """Batched Kaldi fbank: ``(B, samples)`` in [-1, 1] → ``(B, frames, bins)`` log-mel, optionally mean-normalised."""

    def __init__(self, cfg: FbankConfig | None = None):
        super().__init__()
        self.cfg = cfg or FbankConfig()
        self.register_buffer("window", feature_window(self.cfg).float(), persistent=False)
        self.register_buffer("mel", mel_matrix(self.cfg).float(), persistent=False)

    @property
    def num_bins(self) -> int:
        """Feature dimension."""
        return self.cfg.num_mel_bins

    @property
    def feature_dim(self) -> int:
        """Feature dimension (the front-end protocol's name for ``num_bins``)."""
        return self.cfg.num_mel_bins

    @property
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the expected waveforms."""
        return self.cfg.sample_rate

    @property
    def frame_shift(self) -> int:
        """Frame shift in samples."""
        return self.cfg.frame_shift

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields one frame (a whole window with snip_edges, else half a shift)."""
        return self.cfg.frame_length if self.cfg.snip_edges else (self.cfg.frame_shift + 1) // 2

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames Kaldi produces for ``num_samples`` samples (works on ints and integer tensors)."""
        length, shift = self.cfg.frame_length, self.cfg.frame_shift
        if isinstance(num_samples, torch.Tensor):
            if self.cfg.snip_edges:
                return torch.where(num_samples < length, 0, 1 + (num_samples - length).clamp(min=0) // shift)
            return (num_samples + shift // 2) // shift
        if self.cfg.snip_edges:
            return 0 if num_samples < length else 1 + (num_samples - length) // shift
        return (num_samples + shift // 2) // shift

    def _framing_signal(self, wave: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The signal whose ``unfold(frame_length, frame_shift)`` gives Kaldi's frames (edges reflected if needed)."""
        if self.cfg.snip_edges:
            return wave
        length, shift = self.cfg.frame_length, self.cfg.frame_shift
        num_frames = self.num_frames(wave.shape[1])
        # Kaldi centres frame i on i*shift + shift/2 and reflects the signal at both ends (each item at its own end).
        start = shift // 2 - length // 2
        pos = torch.arange(start, start + (num_frames - 1) * shift + length, device=wave.device)
        if lengths is None:
            return wave[:, _reflect(pos, torch.tensor(wave.shape[1], device=wave.device))]
        idx = _reflect(pos[None, :], lengths.to(wave.device)[:, None].clamp(min=1))
        return torch.gather(wave, 1, idx)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel fbank of a batch; ``lengths`` (samples per item) restricts each item's CMN to its own frames."""
        if wave.dim() != 2:
            raise ValueError(f"Fbank expects (batch, samples), got shape {tuple(wave.shape)}")
        num_frames = self.num_frames(wave.shape[1])
        with torch.autocast(device_type=wave.device.type, enabled=False):
            if wave.device.type == "cpu" and wave.shape[0] * num_frames > CPU_CHUNK_FRAMES:
                # On CPU, a few thousand frames at a time stay in cache and reuse their buffers: 2-3x faster than
                # one pass over a large batch, whose 100+ MB intermediates are page-faulted in on every call.
                step = max(1, CPU_CHUNK_FRAMES // max(num_frames, 1))
                parts = [
                    self._log_mel(w, None if lengths is None else lengths[i : i + step])
                    for i, w in zip(range(0, wave.shape[0], step), wave.split(step))
                ]
                feats = torch.cat(parts)
            else:
                feats = self._log_mel(wave, lengths)
            if self.cfg.cmn or lengths is not None:
                feats = self._normalise(feats, lengths)
        return feats

    def _log_mel(self, wave: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Kaldi's log-mel energies, no normalisation: ``(B, T)`` → ``(B, frames, bins)``."""
        cfg = self.cfg
        batch, num_frames = wave.shape[0], self.num_frames(wave.shape[1])
        length, shift, p = cfg.frame_length, cfg.frame_shift, cfg.preemphasis
        sig = self._framing_signal(wave.to(self.mel.dtype) * INT16_SCALE, lengths)
        if num_frames == 0:
            return sig.new_zeros(batch, 0, cfg.num_mel_bins)
        if self.training and cfg.dither != 0.0:
            # Kaldi draws dither per frame; one draw per sample (shared by overlapping frames) serves the same
            # purpose, keeping log() off its floor in digital silence, at a fraction of the cost.
            sig = sig + cfg.dither * torch.randn_like(sig)
        raw = sig.unfold(1, length, shift)
        # Pre-emphasis is linear and, but for each frame's first sample, the same on the whole signal, so it is
        # done once per sample instead of once per frame sample; DC removal commutes with it:
        # preemph(x - m) = preemph(x) - m (1 - p). The windowed frames go straight into the zero-padded FFT input.
        emph = torch.cat([sig[:, :1], sig[:, 1:] - p * sig[:, :-1]], dim=1) if p != 0.0 else sig
        buf = sig.new_empty(batch, num_frames, cfg.padded_length)
        buf[..., length:].zero_()
        body = buf[..., :length]
        torch.mul(emph.unfold(1, length, shift), self.window, out=body)
        body[..., 0] = raw[..., 0] * ((1.0 - p) * self.window[0])
        if cfg.remove_dc:
            body.addcmul_(raw.mean(dim=-1, keepdim=True), self.window, value=-(1.0 - p))
        spec = torch.fft.rfft(buf)
        power = spec.real.square().addcmul_(spec.imag, spec.imag)
        return torch.matmul(power, self.mel).clamp_(min=FLT_EPSILON).log_()

    def _normalise(self, feats: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Utterance-level CMN over each item's valid frames; frames past an item's end are set to 0."""
        if lengths is None:
            return feats - feats.mean(dim=1, keepdim=True) if feats.shape[1] else feats
        valid = self.num_frames(lengths.to(feats.device))
        mask = (torch.arange(feats.shape[1], device=feats.device)[None, :] < valid[:, None]).unsqueeze(-1)
        feats = feats * mask
        if self.cfg.cmn:
            mean = feats.sum(dim=1, keepdim=True) / valid.clamp(min=1)[:, None, None]
            feats = (feats - mean) * mask
        return feats


def _reflect(pos: torch.Tensor, dim: torch.Tensor) -> torch.Tensor:
    """Kaldi's repeated reflection of sample positions into ``[0, dim)``: -1 → 0, dim → dim - 1."""
    m = torch.remainder(pos, 2 * dim)
    return torch.where(m >= dim, 2 * dim - 1 - m, m)
