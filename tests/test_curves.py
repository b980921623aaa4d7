"""Reference-curve comparison: epoch records read from exp dirs or files, plotted; bad files are one line."""
import json

from badinput import assert_clean_error, run_entry


def write(path, epochs, val=True):
    with open(path, "w") as f:
        for e in range(1, epochs + 1):
            f.write(json.dumps({"kind": "step", "epoch": e, "step": e * 10, "loss": 5.0 / e}) + "\n")
            rec = {"kind": "epoch", "epoch": e, "step": e * 10, "loss": 4.0 / e}
            if val:
                rec["val_eer"] = 30.0 - e
            f.write(json.dumps(rec) + "\n")


def test_plots_a_run_against_a_reference(tmp_path, capsys):
    (tmp_path / "exp").mkdir()
    write(tmp_path / "exp" / "metrics.jsonl", 3)
    write(tmp_path / "ref.jsonl", 4, val=False)
    out = tmp_path / "cmp.png"
    res = run_entry("plot_curves", ["--out", out, tmp_path / "exp", f"reference={tmp_path / 'ref.jsonl'}"], capsys)
    assert res.code == 0, res.err
    assert out.stat().st_size > 1000


def test_bad_records_are_one_line(tmp_path, capsys):
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"kind": "epoch", "epoch": 1, "loss": 1}\nnot json\n')
    assert_clean_error(run_entry("plot_curves", ["--out", tmp_path / "x.png", bad], capsys), "m.jsonl:2")
    empty = tmp_path / "e.jsonl"
    empty.write_text('{"kind": "step", "epoch": 1, "loss": 1}\n')
    assert_clean_error(run_entry("plot_curves", ["--out", tmp_path / "x.png", empty], capsys), "no epoch record")
    assert_clean_error(run_entry("plot_curves", ["--out", tmp_path / "x.png", tmp_path / "nope"], capsys), "nope")
