"""One end-to-end run of the embedded-corpus recipe (egs/mini/run.sh) at its smallest settings, then a rerun."""
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CORPUS = ("--num-train-speakers 6 --utts-per-speaker 4 --num-test-speakers 4 --test-utts-per-speaker 3 "
               "--min-dur 1 --max-dur 1.5 --num-noise 2 --num-music 2 --num-speech 3 --rooms-per-class 1 "
               "--rirs-per-room 1 --num-workers 1")
TINY_TRAINING = "--trainer.epochs 1 --data.batch_size 8 --data.num_workers 0 --trainer.progress false"
SYSTEMS = ["baseline", "supervised", "DINO", "MoCo", "supervised (MoCo init)", "pseudo-labels round 1",
           "pseudo-labels round 2", "DLG-LC round 1", "multi-modal DLG-LC round 1",
           "multi-modal DLG-LC round 1, audio + face score fusion",
           "supervised MHFA (true labels; wav2vec 2.0 tiny pretrained here)", "MHFA DLG-LC round 1",
           "MHFA DLG-LC round 1 + large-margin fine-tuning", "C-DINO (fixed)", "pseudo-labels from C-DINO round 1"]


def _run_recipe(recipe: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    cmd = ["bash", "run.sh", "--corpus_opts", TINY_CORPUS, "--train_opts", TINY_TRAINING, "--num_clusters", "5",
           "--ssl_pretrain_steps", "3", "--mhfa", "true",
           "--nj", "2", *extra]
    return subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_mini_recipe_end_to_end(tmp_path):
    recipe = tmp_path / "egs" / "mini"
    shutil.copytree(os.path.join(REPO, "egs", "mini"), recipe, symlinks=True,
                    ignore=shutil.ignore_patterns("exp", "data", "corpus"))
    (recipe / "tools").unlink()
    (recipe / "tools").symlink_to(os.path.join(REPO, "tools"))

    first = _run_recipe(str(recipe))
    assert first.returncode == 0, first.stderr[-4000:]

    table = (recipe / "exp" / "RESULTS.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[0].startswith("| system | EER (%) | minDCF@0.01")
    assert [row.split("|")[1].strip() for row in rows[2:]] == SYSTEMS  # one row per system, in stage order
    assert (recipe / "exp" / "det.png").stat().st_size > 0
    assert (recipe / "exp" / "purity_rounds.png").stat().st_size > 0
    report = json.loads((recipe / "exp" / "data" / "train_round2" / "cluster_report.json").read_text())
    assert 0.0 <= report["metrics"]["nmi"] <= 1.0
    round1 = json.loads((recipe / "exp" / "round1" / "eval" / "test.json").read_text())
    assert "NMI" in round1["extra"]
    dlg1 = json.loads((recipe / "exp" / "dlg_round1" / "eval" / "test.json").read_text())
    assert "gate precision" in dlg1["extra"] and (recipe / "exp" / "dlg_round1" / "loss_gate" / "report.json").is_file()
    assert (recipe / "exp" / "mm_round1" / "branch_face.pt").is_file()
    assert (recipe / "exp" / "ssl_pretrained" / "config.json").is_file()
    assert (recipe / "exp" / "mhfa_lmft" / "ssl_model").is_dir()  # the exported front-end travels with the encoder
    fused = json.loads((recipe / "exp" / "data" / "train_mm_round1" / "cluster_report.json").read_text())
    assert len(fused["embeddings"]) == 2 and fused["emb_weights"] == [1.0, 1.0]  # audio + mean face frames

    # Every stage has its marker: a rerun does nothing and says so.
    again = _run_recipe(str(recipe))
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stderr.count("already done") == 14  # stages 1-9, 11-14 and 20 (10 and 15, the controls, are off)
    assert "wesv.bin.train" not in again.stderr
