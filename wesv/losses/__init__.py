"""Speaker classification losses: AAM-softmax (with the margin's label separate from the target) and softmax; L2-SP."""
from wesv.losses.aam_softmax import AAMSoftmax, Softmax, margin_schedule
from wesv.losses.l2sp import L2SP, L2SPConfig

__all__ = ["AAMSoftmax", "L2SP", "L2SPConfig", "Softmax", "margin_schedule"]
