"""Every training method, one module each (classifier, DINO, MoCo, ...); importing a module registers its method."""
from wesv.methods.classifier import Classifier, ClassifierConfig

__all__ = ["Classifier", "ClassifierConfig"]
