"""SSL front-end (a local transformers speech model, all hidden states) + MHFA or layer-sum/ASP back-end (seed 000).

The encoder names its parts for per-part learning rates (``param_groups``: the SSL model's trainable layers at
``ssl_lr_scale``, the back-end at 1), adds L2-SP towards the pretrained SSL weights (``regularize``), and exports
the fine-tuned SSL model with ``save_pretrained`` beside its encoder file (``export_files``) so ``encoder.pt`` holds
only the back-end and loads from its directory alone.
"""
import os
import shutil
from dataclasses import dataclass, field
from typing import Literal

import torch

from wesv.errors import WesvError
from wesv.features.hf_frontend import HfFrontEndConfig, HfSslFrontEnd
from wesv.losses.l2sp import L2SP, L2SPConfig
from wesv.models.base import ENCODERS, Encoder
from wesv.nn.mhfa import MHFA, LayerSumASP

#: Where ``export_files`` writes the fine-tuned SSL model, relative to the encoder file's directory.
SSL_EXPORT_DIR = "ssl_model"


@dataclass
class SslMhfaConfig:
    """``encoder: {name: ssl_mhfa, model_dir: DIR, ...}``; defaults are the seed's (WavLM Base+ + MHFA)."""

    model_dir: str = ""  # local transformers model dir; relative paths in an exported encoder.pt are beside it
    backend: Literal["mhfa", "ecapa"] = "mhfa"
    heads: int = 64
    compress_dim: int = 128
    embed_dim: int = 256
    ecapa_channels: int = 512  # backend ecapa: width of the layer-sum projection before attentive stats pooling
    freeze_feature_encoder: bool = True
    freeze_prefixes: list[str] = field(default_factory=lambda: ["feature_projection", "encoder.pos_conv_embed"])
    gradient_checkpointing: bool = False
    layerdrop: float = 0.0
    spec_augment: bool = False
    ssl_lr_scale: float = 0.004  # lr of the SSL layers / lr of the back-end: the seed's 2e-5 / 5e-3
    l2sp: L2SPConfig = field(default_factory=L2SPConfig)

    def __post_init__(self) -> None:
        if min(self.heads, self.compress_dim, self.embed_dim, self.ecapa_channels) < 1:
            raise WesvError("ssl_mhfa: heads, compress_dim, embed_dim and ecapa_channels must be >= 1")
        if self.ssl_lr_scale < 0:
            raise WesvError(f"ssl_mhfa: ssl_lr_scale must be >= 0, got {self.ssl_lr_scale}")

    def frontend_config(self) -> HfFrontEndConfig:
        """The front-end part of the settings."""
        return HfFrontEndConfig(self.model_dir, self.freeze_feature_encoder, list(self.freeze_prefixes),
                                self.gradient_checkpointing, self.layerdrop, self.spec_augment)


class SslMhfa(Encoder):
    """Speaker encoder on every hidden state of a transformers speech SSL model."""

    def __init__(self, cfg: SslMhfaConfig):
        super().__init__(cfg, HfSslFrontEnd(cfg.frontend_config()), cfg.embed_dim)
        layers, hidden = self.frontend.num_layers, self.frontend.feature_dim
        if cfg.backend == "mhfa":
            self.backend = MHFA(layers, hidden, cfg.heads, cfg.compress_dim, cfg.embed_dim)
        else:
            self.backend = LayerSumASP(layers, hidden, cfg.ecapa_channels, cfg.embed_dim, cfg.compress_dim)
        self.l2sp = None
        if cfg.l2sp.alpha > 0:  # w₀: the weights as loaded from model_dir, before any fine-tuning or checkpoint
            self.l2sp = L2SP([(n, p) for n, p in self.frontend.model.named_parameters() if p.requires_grad],
                             cfg.l2sp)

    def embed(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, frames, layers, hidden)`` → ``(B, embed_dim)``."""
        return self.backend(feats, mask)

    def param_groups(self) -> list[dict]:
        """SSL layers (``backbone``: True, at ``ssl_lr_scale``) and the back-end; frozen SSL parts in no group."""
        return [{"name": "ssl_layers", "params": self.frontend.trainable_parameters(),
                 "lr_scale": self.cfg.ssl_lr_scale, "backbone": True},
                {"name": "backend", "params": list(self.backend.parameters()), "lr_scale": 1.0}]

    def regularize(self, loss: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The task loss with L2-SP towards the pretrained SSL weights (unchanged when ``l2sp.alpha`` is 0)."""
        if self.l2sp is None:
            return loss, {}
        return self.l2sp.combine(loss)

    def export_files(self, directory: str, name: str = "encoder.pt") -> dict:
        """``save_pretrained`` the fine-tuned SSL model beside encoder file ``name`` (swapped in whole): into
        ``ssl_model/`` for ``encoder.pt``, ``STEM.ssl_model/`` for any other name (e.g. encoder_avg.pt)."""
        rel = SSL_EXPORT_DIR if name == "encoder.pt" else f"{os.path.splitext(name)[0]}.{SSL_EXPORT_DIR}"
        final = os.path.join(directory, rel)
        tmp = os.path.join(directory, f".{rel}.tmp.{os.getpid()}")
        old = os.path.join(directory, f".{rel}.old.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self.frontend.save_pretrained(tmp)
            if os.path.exists(final):
                os.replace(final, old)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return {"config": {"model_dir": rel}, "relative_paths": ["model_dir"],
                "external_prefixes": ["frontend.model."], "files": [rel]}


ENCODERS.register("ssl_mhfa", config=SslMhfaConfig)(SslMhfa)
