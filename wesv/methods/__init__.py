"""Supervised / pseudo-label training methods; importing this package registers them in ``wesv.trainer.METHODS``."""
from wesv.methods.classifier import Classifier, ClassifierConfig

__all__ = ["Classifier", "ClassifierConfig"]
