"""Speaker encoders (front-end + backbone + pooling: ECAPA-TDNN, ResNet on fbank); registry, build, save and load.

Registered names (``encoder: {name: ..., <config fields>}``):

- ``ecapa_tdnn``: EcapaTdnnConfig, channels 512 (6.19 M params); ``channels: 1024`` gives ECAPA-TDNN-1024 (14.66 M).
- ``ecapa_tdnn_small``: channels 128, aggregation 384, embed 128 (0.57 M): CPU work on the embedded corpus.
- ``resnet34``: ResNetConfig, WeSpeaker's ResNet34 (blocks [3,4,6,3], width 32, embed 256; 6.63 M).
- ``resnet_small``: blocks [1,1,1,1], width 8, embed 128 (0.24 M): CPU work on the embedded corpus.
- ``sequence_tdnn``: SequenceTdnnConfig, a branch encoder of a feature stream (``face.scp``): frames
  ``(B, frames, input_dim)`` (no front-end) → temporal convs → attentive stats pooling → embed 128 (0.19 M).
- ``ssl_mhfa``: SslMhfaConfig, a local transformers speech SSL model (WavLM, HuBERT, wav2vec 2.0) + MHFA or
  layer-sum/ASP back-end (seed 000).
"""
from wesv.models import ecapa_tdnn, resnet, sequence, ssl_mhfa  # noqa: F401  (register the architectures)
from wesv.models.base import ENCODERS, Encoder, FbankEncoder
from wesv.models.ecapa_tdnn import EcapaTdnn, EcapaTdnnConfig, EcapaTdnnSmallConfig
from wesv.models.io import build_encoder, encoder_config_class, load_encoder, save_encoder
from wesv.models.resnet import ResNet, ResNetConfig, ResNetSmallConfig
from wesv.models.sequence import SequenceTdnn, SequenceTdnnConfig
from wesv.models.ssl_mhfa import SslMhfa, SslMhfaConfig

__all__ = ["ENCODERS", "Encoder", "FbankEncoder", "EcapaTdnn", "EcapaTdnnConfig", "EcapaTdnnSmallConfig", "ResNet",
           "ResNetConfig", "ResNetSmallConfig", "SequenceTdnn", "SequenceTdnnConfig", "SslMhfa", "SslMhfaConfig",
           "build_encoder", "save_encoder", "load_encoder", "encoder_config_class"]
