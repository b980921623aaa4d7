"""Speaker encoders (ECAPA-TDNN, ResNet) with their fbank frontend; registry, build, save and load."""
from wesv.models import ecapa_tdnn, resnet  # noqa: F401  (register the architectures)
from wesv.models.base import ENCODERS, FbankEncoder
from wesv.models.ecapa_tdnn import EcapaTdnn, EcapaTdnnConfig, EcapaTdnnSmallConfig
from wesv.models.io import build_encoder, encoder_config_class, load_encoder, save_encoder
from wesv.models.resnet import ResNet, ResNetConfig, ResNetSmallConfig

__all__ = ["ENCODERS", "FbankEncoder", "EcapaTdnn", "EcapaTdnnConfig", "EcapaTdnnSmallConfig", "ResNet",
           "ResNetConfig", "ResNetSmallConfig", "build_encoder", "save_encoder", "load_encoder",
           "encoder_config_class"]
