"""wesv: self-supervised speaker verification."""

__version__ = "0.1.0"
