"""``metrics.jsonl`` (one record per epoch, per-step loss every N steps) and the ``loss.png`` curve."""
import json
import os

import numpy as np


class MetricsLog:
    """Appends JSON records; on resume, drops records past the checkpoint so the file reads like one run."""

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and os.path.exists(path):
            kept = [r for r in self.read() if r.get("step", 0) <= resume_step]
            tmp = f"{path}.tmp.{os.getpid()}"
            with open(tmp, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in kept)
            os.replace(tmp, path)
        elif resume_step is None and os.path.exists(path):
            os.remove(path)

    def write(self, record: dict) -> None:
        """Append one record (flushed at once, so a killed run keeps its history)."""
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        """All records so far."""
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [json.loads(line) for line in f if line.strip()]


def plot_loss(records: list[dict], png: str) -> None:
    """Per-step loss (thin), per-epoch mean loss (dots) and validation EER (when logged) against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [(r["step"], r["loss"]) for r in records if r.get("kind") == "step"]
    epochs = [(r["step"], r["loss"]) for r in records if r.get("kind") == "epoch"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if steps:
        s = np.array(steps, dtype=float)
        ax.plot(s[:, 0], s[:, 1], lw=0.8, alpha=0.6, label="step loss")
    if epochs:
        e = np.array(epochs, dtype=float)
        ax.plot(e[:, 0], e[:, 1], "o-", label="epoch mean")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    val = [(r["step"], r["val_eer"]) for r in records if r.get("kind") == "epoch" and "val_eer" in r]
    handles, labels = ax.get_legend_handles_labels()
    if val:  # validation EER on its own axis: it never steers training, it only shows where the loss leads
        v = np.array(val, dtype=float)
        ax2 = ax.twinx()
        ax2.plot(v[:, 0], v[:, 1], "s--", color="tab:red", label="validation EER (%)")
        ax2.set_ylabel("validation EER (%)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels)
    fig.tight_layout()
    tmp = png + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)
