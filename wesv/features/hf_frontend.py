"""A transformers speech SSL model (WavLM, HuBERT, wav2vec 2.0, data2vec-audio) from a local directory as a front-end.

The front-end returns every hidden state (the CNN's output projection and each transformer layer), stacked as
``(B, frames, num_layers, hidden)`` so that dim 1 stays the frame axis of the FrontEnd protocol. Padding goes in as
the model's ``attention_mask``. Only layer-norm CNN feature extractors (``feat_extract_norm: layer``: WavLM, HuBERT
Large, wav2vec 2.0 Large-LV60) are padding-invariant; group-norm ones (wav2vec 2.0 / HuBERT Base) normalise each
channel over the whole padded row, so a padded item's embedding differs a little from the one it has alone.
Nothing is downloaded: every load is ``local_files_only=True`` from a directory written by ``save_pretrained``.
"""
import json
import os
from dataclasses import dataclass, field
from math import prod

import torch
from torch import nn

from wesv.errors import WesvError
from wesv.features.frontend import FrontEnd

#: ``model_type`` values of the speech SSL models this front-end takes (they share the wav2vec 2.0 interface).
SPEECH_MODEL_TYPES = ("wavlm", "hubert", "wav2vec2", "wav2vec2-conformer", "data2vec-audio", "unispeech",
                      "unispeech-sat")


@dataclass
class HfFrontEndConfig:
    """Where the model lives and what of it trains."""

    model_dir: str = ""  # a local directory with config.json + weights (save_pretrained / huggingface-cli download)
    freeze_feature_encoder: bool = True  # the convolutional feature encoder gets no gradient
    # Further parameter-name prefixes (inside the transformers model) frozen too; the seed freezes these.
    freeze_prefixes: list[str] = field(default_factory=lambda: ["feature_projection", "encoder.pos_conv_embed"])
    gradient_checkpointing: bool = False
    layerdrop: float = 0.0  # overrides the model config's (random layer skipping in training)
    spec_augment: bool = False  # the model's own time/feature masking in training (MHFA fine-tuning: off)


def read_speech_config(model_dir: str) -> dict:
    """The model directory's config.json as a dict; a missing or non-speech directory raises one WesvError line."""
    if not model_dir:
        raise WesvError("encoder.model_dir is empty: give a local directory holding a transformers speech model "
                        "(config.json + weights)")
    path = os.path.join(model_dir, "config.json")
    if not os.path.isdir(model_dir):
        raise WesvError(f"{model_dir}: model directory not found (models are never downloaded: fetch it first, e.g. "
                        "huggingface-cli download microsoft/wavlm-base-plus --local-dir DIR, and give DIR)")
    if not os.path.isfile(path):
        raise WesvError(f"{model_dir}: no config.json; give a directory written by save_pretrained or "
                        "huggingface-cli download")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as err:
        raise WesvError(f"{path}: unreadable model config ({err})") from None
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type not in SPEECH_MODEL_TYPES:
        raise WesvError(f"{model_dir}: model_type {model_type!r} is not a speech SSL model; need one of "
                        f"{', '.join(SPEECH_MODEL_TYPES)}")
    return cfg


def load_speech_model(model_dir: str, overrides: dict | None = None) -> nn.Module:
    """``AutoModel.from_pretrained(model_dir, local_files_only=True)`` with config ``overrides``; clear errors."""
    read_speech_config(model_dir)
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        for key, value in (overrides or {}).items():
            setattr(config, key, value)
        model = AutoModel.from_pretrained(model_dir, config=config, local_files_only=True)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise WesvError(f"{model_dir}: cannot load the speech model ({first})") from None
    if not hasattr(model, "feature_extractor") or not hasattr(model, "encoder"):
        raise WesvError(f"{model_dir}: {type(model).__name__} is not a wav2vec 2.0-style speech model")
    return model


class HfSslFrontEnd(FrontEnd):
    """Waveforms → all hidden states ``(B, frames, num_layers, hidden)`` of a local transformers speech model."""

    def __init__(self, cfg: HfFrontEndConfig):
        super().__init__()
        self.cfg = cfg
        overrides = {"layerdrop": cfg.layerdrop, "apply_spec_augment": cfg.spec_augment}
        self.model = load_speech_model(cfg.model_dir, overrides)
        mc = self.model.config
        self._kernels, self._strides = list(mc.conv_kernel), list(mc.conv_stride)
        self._sample_rate = int(getattr(mc, "sampling_rate", 16000) or 16000)
        if cfg.freeze_feature_encoder:  # what the models' freeze_feature_encoder() does (HuBERT has none)
            self.model.feature_extractor._freeze_parameters()
        names = [n for n, _ in self.model.named_parameters()]
        for prefix in cfg.freeze_prefixes:
            hit = [p for n, p in self.model.named_parameters() if n == prefix or n.startswith(prefix.rstrip(".") + ".")]
            if not hit:
                raise WesvError(f"encoder.freeze_prefixes: {prefix!r} matches no parameter of {type(self.model).__name__}"
                                f"; its parameters start with {sorted({n.split('.')[0] for n in names})}")
            for p in hit:
                p.requires_grad_(False)
        spec = getattr(self.model, "masked_spec_embed", None)
        if spec is not None and not cfg.spec_augment:  # unused without masking: no grad, so DDP needs no search
            spec.requires_grad_(False)
        if cfg.gradient_checkpointing:  # transformers >= 5.x names it activation checkpointing
            kwargs = {"use_reentrant": False}
            if hasattr(self.model, "activation_checkpointing_enable"):
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    @property
    def sample_rate(self) -> int:
        """The model config's sampling rate (16 kHz for every public speech SSL model)."""
        return self._sample_rate

    @property
    def frame_shift(self) -> int:
        """Product of the CNN strides (320 samples, 20 ms at 16 kHz, for the public models)."""
        return prod(self._strides)

    @property
    def feature_dim(self) -> int:
        """Hidden size of one layer's output."""
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        """Hidden states returned per frame: the CNN projection plus each transformer layer."""
        return int(self.model.config.num_hidden_layers) + 1

    @property
    def min_samples(self) -> int:
        """Receptive field of the CNN: the shortest input giving one frame."""
        n = 1
        for k, s in zip(reversed(self._kernels), reversed(self._strides)):
            n = (n - 1) * s + k
        return n

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames of the CNN (no padding) for ``num_samples``; 0 below ``min_samples``."""
        n = num_samples
        for k, s in zip(self._kernels, self._strides):
            n = (n - k) // s + 1
        if isinstance(n, torch.Tensor):
            return n.clamp(min=0)
        return max(0, n)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The model parameters left trainable (transformer layers and whatever is not frozen)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, samples)`` → ``(B, frames, num_layers, hidden)``; frames past an item's end are zero."""
        mask = None
        if lengths is not None:
            mask = torch.arange(wave.shape[1], device=wave.device)[None, :] < lengths[:, None]
            wave = wave.masked_fill(~mask, 0.0)
        out = self.model(wave, attention_mask=None if mask is None else mask.long(), output_hidden_states=True)
        feats = torch.stack(out.hidden_states, dim=2)
        if lengths is not None:
            frames = self.num_frames(lengths)
            keep = torch.arange(feats.shape[1], device=feats.device)[None, :] < frames[:, None]
            feats = feats * keep[:, :, None, None].to(feats.dtype)
        return feats

    def save_pretrained(self, directory: str) -> None:
        """Write the (fine-tuned) model with ``save_pretrained`` into ``directory`` (created)."""
        self.model.save_pretrained(directory)
