"""The front-end protocol: what an encoder's waveform → frame-feature module must tell the rest of wesv."""
from abc import ABC, abstractmethod

import torch
from torch import nn


class FrontEnd(nn.Module, ABC):
    """Waveforms ``(B, samples)`` in [-1, 1] → features ``(B, frames, feature_dim)``, on the model's device.

    Callers (the encoder, extraction, the trainer) read the sample rate, the shortest usable input and the frame rate
    from here, never from a front-end's own config. With ``lengths`` (samples per item) each item's features are
    computed from its own samples only, and frames at or past ``num_frames(lengths)`` are zero.
    """

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) the front-end expects."""

    @property
    @abstractmethod
    def frame_shift(self) -> int:
        """Samples between consecutive frames."""

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Feature dimension of a frame."""

    @abstractmethod
    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames produced for ``num_samples`` samples (an int, or an integer tensor of per-item lengths)."""

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields one frame."""
        n = 1
        while self.num_frames(n) < 1:  # subclasses with a closed form override this
            n += 1
        return n

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.frame_shift

    @abstractmethod
    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, samples)`` → ``(B, frames, feature_dim)``; with ``lengths``, frames past an item's end are zero."""
