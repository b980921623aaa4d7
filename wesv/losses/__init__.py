"""Speaker classification losses: AAM-softmax (with the margin's label separate from the target) and softmax."""
from wesv.losses.aam_softmax import AAMSoftmax, Softmax, margin_schedule

__all__ = ["AAMSoftmax", "Softmax", "margin_schedule"]
