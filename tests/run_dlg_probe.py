"""``python -m torch.distributed.run ... tests/run_dlg_probe.py <train args>``: wesv.bin.train with a DLG-LC probe.

The probe is DLG-LC plus one logged number per epoch: whether every rank holds the same τ for the next epoch.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wesv import distributed as dist  # noqa: E402
from wesv.bin.train import main  # noqa: E402
from wesv.methods.dlg_lc import DlgLc, DlgLcConfig  # noqa: E402
from wesv.trainer.method import register_method  # noqa: E402


@register_method("dlg_lc_probe", config=DlgLcConfig)
class DlgLcProbe(DlgLc):
    """DLG-LC that reports whether all ranks agree on the fitted τ."""

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        logs = super().on_epoch_end(epoch)
        taus = dist.all_gather_objects(self._fitted)
        logs["tau_ranks_agree"] = float(all(t == taus[0] for t in taus))
        logs["tau_fitted"] = float("nan") if self._fitted is None else self._fitted
        return logs


if __name__ == "__main__":
    main()
