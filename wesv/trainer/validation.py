"""Validation during training: EER / minDCF@0.01 of the exported encoder on a capped trial list, every N epochs.

It only measures: rank 0 embeds in eval mode, under ``torch.no_grad`` and a forked RNG, so training (and an exact
resume) goes on as if it had not run. The numbers go into the epoch record (``val_eer`` in %, ``val_mindcf``).
"""
import os
import time

import numpy as np
import torch
from torch import nn

from wesv.config.train import ValidationConfig
from wesv.errors import WesvError
from wesv.log import get_logger

log = get_logger("wesv.trainer.validation")
P_TARGET = 0.01


def validation_subset(cfg: ValidationConfig) -> tuple[dict[str, str], np.ndarray, np.ndarray, np.ndarray]:
    """``(wav_scp, enroll, test, label)`` of the capped trial list: trials whose both sides are in the subset."""
    from wesv.data.datadir import DataDir
    from wesv.data.trials import read_trials

    data = DataDir.load(cfg.data)
    if data.trials is None:
        raise WesvError(f"validation.data {cfg.data}: no trials file; point it at an evaluation data dir")
    trials = read_trials(data.trials)
    utts = list(dict.fromkeys(np.concatenate([trials.enroll, trials.test]).tolist()))
    missing = [u for u in utts if u not in data.wav_scp]
    if missing:
        raise WesvError(f"{data.trials}: {len(missing)} trial utterance(s) not in wav.scp (e.g. {missing[0]}); "
                        "fix the data dir (python -m wesv.bin.validate_data_dir)")
    if cfg.max_utts and len(utts) > cfg.max_utts:
        pick = np.random.default_rng(cfg.seed).choice(len(utts), cfg.max_utts, replace=False)
        utts = [utts[i] for i in sorted(pick)]
    keep_set = set(utts)
    keep = np.array([e in keep_set and t in keep_set for e, t in zip(trials.enroll, trials.test)], dtype=bool)
    label = trials.label[keep]
    if label.sum() == 0 or label.sum() == label.size:
        raise WesvError(f"validation: the {len(utts)} utterances drawn from {data.trials} leave "
                        f"{int(label.sum())} target and {int((~label).sum())} nontarget trials; raise "
                        "validation.max_utts (or 0 = all)")
    return {u: data.wav_scp[u] for u in utts}, trials.enroll[keep], trials.test[keep], label


class Validator:
    """Runs the validation of a ``ValidationConfig`` (or nothing for None) at the end of epochs."""

    def __init__(self, cfg: ValidationConfig | None, num_epochs: int, device: torch.device):
        self.cfg, self.num_epochs, self.device = cfg, num_epochs, device
        self._subset = None
        if cfg is not None:
            self._subset = validation_subset(cfg)  # bad dirs fail when training starts, not after an epoch
            log.info("validation every %d epoch(s) on %d utterances, %d trials of %s", cfg.every,
                     len(self._subset[0]), len(self._subset[3]), cfg.data)

    def due(self, epoch: int) -> bool:
        """Whether to validate after 1-based ``epoch``."""
        return self.cfg is not None and (epoch % self.cfg.every == 0 or epoch == self.num_epochs)

    def __call__(self, encoder: nn.Module, epoch: int) -> dict[str, float]:
        """``{val_eer, val_mindcf, val_time_s}`` after 1-based ``epoch`` when due, else ``{}``."""
        if not self.due(epoch):
            return {}
        start = time.time()
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = encoder.training
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            encoder.eval()
            try:
                result = score_encoder(encoder, *self._subset, device=self.device)
            finally:
                encoder.train(was_training)
        result["val_time_s"] = round(time.time() - start, 2)
        return result


def score_encoder(encoder: nn.Module, wav_scp: dict[str, str], enroll: np.ndarray, test: np.ndarray,
                  label: np.ndarray, device: torch.device) -> dict[str, float]:
    """EER (%) and minDCF@0.01 of cosine scores of ``encoder``'s embeddings (extraction's code path)."""
    from wesv.extract.embed import embed_utterances
    from wesv.scoring.metrics import detection_summary
    from wesv.scoring.scorer import score_trials

    def on_bad(utt: str, reason: str) -> None:
        raise WesvError(f"validation utterance {utt}: {reason}")

    pairs = list(embed_utterances(encoder, wav_scp, on_bad, device=device, progress=False))
    keys = [k for k, _ in pairs]
    matrix = np.stack([v for _, v in pairs])
    scores = score_trials(enroll, test, (keys, matrix), (keys, matrix), trials_path=os.path.join("validation"))
    summary = detection_summary(scores, label, (P_TARGET,))
    return {"val_eer": float(summary["EER"]), "val_mindcf": float(summary[f"minDCF@{P_TARGET:g}"])}
