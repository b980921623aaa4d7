"""Offline precision of the loss-gate and the label correction, against true labels read only here."""
from __future__ import annotations

from collections import Counter

import numpy as np

from wesv.errors import WesvError


def majority_speakers(labels: np.ndarray, truth: np.ndarray) -> dict[int, str]:
    """Each pseudo-label's (cluster's) most frequent true speaker; ties go to the speaker named first in C order."""
    by_label: dict[int, Counter] = {}
    for lab, spk in zip(labels.tolist(), truth.tolist()):
        by_label.setdefault(lab, Counter())[spk] += 1
    return {lab: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for lab, c in by_label.items()}


def share(mask: np.ndarray) -> float | None:
    """Mean of a boolean array, or None when it is empty."""
    return float(mask.mean()) if mask.size else None


def epoch_precision(rec: dict, truth_of: dict[str, str], source: str = "--truth-utt2spk") -> dict:
    """Label accuracy over all seen samples, among gated-in ones, among corrected ones, and the flips."""
    utts = rec["utt"].tolist()
    missing = [u for u in utts if u not in truth_of]
    if missing:
        raise WesvError(f"{source}: {len(missing)} training utterances have no true speaker (first: {missing[0]}); "
                        "give the utt2spk of the corpus the pseudo-labels were made from")
    truth = np.array([truth_of[u] for u in utts])
    labels = rec["label"].astype(np.int64)
    seen = np.isfinite(rec["loss"])
    majority = majority_speakers(labels[seen], truth[seen])
    right = np.array([majority.get(int(lab)) == spk for lab, spk in zip(labels, truth)])
    corrected = (rec["corrected_label"] >= 0) & seen
    right_after = right.copy()
    right_after[corrected] = [majority.get(int(lab)) == spk
                              for lab, spk in zip(rec["corrected_label"][corrected], truth[corrected])]
    reliable = rec["reliable"].astype(bool) & seen
    return {"samples": int(seen.sum()), "gated_in": int(reliable.sum()), "corrected": int(corrected.sum()),
            "accuracy_all": share(right[seen]), "gate_precision": share(right[reliable]),
            "correction_precision": share(right_after[corrected]),
            "wrong_to_right": int((~right & right_after & corrected).sum()),
            "right_to_wrong": int((right & ~right_after & corrected).sum()),
            "threshold": float(rec["threshold"])}
