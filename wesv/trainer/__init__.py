"""One trainer for every method; methods plug in through ``register_method``."""
from wesv.trainer.method import METHODS, DataInfo, Method, register_method

__all__ = ["METHODS", "DataInfo", "Method", "register_method"]
