"""One trainer for every method; methods plug in through ``register_method``."""
from wesv.trainer.method import METHODS, DataInfo, Method, find_method, register_method

__all__ = ["METHODS", "DataInfo", "Method", "find_method", "register_method", "Trainer", "train"]


def __getattr__(name: str):
    # The trainer pulls in configs, models and data; method modules import this package for the base class only.
    if name in ("Trainer", "train"):
        from wesv.trainer import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
