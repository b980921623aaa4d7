"""``python -m torch.distributed.run ... tests/run_sample_probe.py <train args>``: wesv.bin.train with the probe."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer_helpers  # noqa: E402,F401  (registers the sample_probe method)
from wesv.bin.train import main  # noqa: E402

if __name__ == "__main__":
    main()
