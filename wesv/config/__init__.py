"""Typed configs: YAML → dataclasses, ``--section.key value`` overrides, the resolved config saved with a run."""
from wesv.config.typed import from_dict, parse_overrides, to_dict

__all__ = ["from_dict", "to_dict", "parse_overrides", "load_config", "save_config", "config_from_dict",
           "config_to_dict", "TrainConfig", "DataConfig", "OptimConfig", "TrainerConfig", "EncoderSection"]

_TRAIN_NAMES = {"load_config", "save_config", "config_from_dict", "config_to_dict", "TrainConfig", "DataConfig",
                "OptimConfig", "TrainerConfig", "EncoderSection"}


def __getattr__(name: str):
    # The training config imports wesv.augment; load it on first use so `from_dict` alone stays light.
    if name in _TRAIN_NAMES:
        from wesv.config import train

        return getattr(train, name)
    raise AttributeError(name)
