"""Results over seeds: mean ± std per system against a direct computation, G, missing systems, bad input."""
import json
import math
import os

import numpy as np
import pytest

from wesv.scoring.aggregate import aggregate, aggregate_table, collect, gap_share


def write_run(root, name, systems):
    for system, (eer, extra) in systems.items():
        d = os.path.join(root, name, "exp", system.replace(" ", "_"), "eval")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "test.json"), "w") as f:
            json.dump({"system": system, "EER": eer, "minDCF@0.01": 0.9, "minDCF@0.05": 0.5, "extra": extra}, f)
    return os.path.join(root, name)


def test_mean_std_and_gap_share_per_seed(tmp_path):
    runs = [write_run(str(tmp_path), f"seed{s}", {"baseline": (30.0 + s, {}), "supervised": (10.0, {}),
                                                 "DINO": (20.0 + 2 * s, {"AMI": 0.5 + 0.1 * s, "NMI": "x"})})
            for s in range(3)]
    runs.append(write_run(str(tmp_path), "seed3", {"baseline": (30.0, {}), "supervised": (10.0, {})}))
    rows = {r["system"]: r for r in aggregate(collect(runs))}
    dino = rows["DINO"]
    assert dino["n"] == 3
    eers = np.array([20.0, 22.0, 24.0])
    assert dino["stats"]["EER"][:2] == pytest.approx((eers.mean(), eers.std(ddof=1)))
    g = [gap_share(e, 30.0 + s, 10.0) for s, e in enumerate(eers)]
    assert dino["stats"]["G"][0] == pytest.approx(np.mean(g))
    assert dino["stats"]["AMI"][:2] == pytest.approx((0.6, 0.1))
    assert "NMI" not in dino["stats"]  # not numeric
    assert rows["baseline"]["stats"]["G"][0] == 0.0 and rows["supervised"]["stats"]["G"][0] == 1.0
    table = aggregate_table(list(rows.values()))
    assert "| DINO | 3 | 22.00 ± 2.00 |" in table
    assert math.isnan(gap_share(10.0, 10.0, 10.0))


def test_cli_writes_the_table_and_refuses_an_empty_run(tmp_path, capsys):
    from badinput import assert_clean_error, run_entry

    run = write_run(str(tmp_path), "seed0", {"baseline": (30.0, {}), "supervised": (10.0, {})})
    out = tmp_path / "R.md"
    assert run_entry("aggregate_results", [run, "--out", out], capsys).code == 0
    assert "| supervised | 1 | 10.00 |" in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(run_entry("aggregate_results", [empty, "--out", out], capsys), str(empty), "no exp/")
