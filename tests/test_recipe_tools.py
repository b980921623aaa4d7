"""Recipe tooling: parse_options.sh, the local and Slurm job runners (fake sbatch), and the recipes' run.sh."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
FAKE_BIN = os.path.join(ROOT, "tests", "fake_bin")


def env(**extra):
    """PATH with this python's bin dir (for `python` in recipes) and the fake sbatch first."""
    path = os.pathsep.join([FAKE_BIN, os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, OMP_NUM_THREADS="1", **extra)


def run(args, cwd, **extra):
    return subprocess.run(args, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------------------------- parse_options.sh
SCRIPT = """#!/usr/bin/env bash
# Demo script for the option parser.
# Usage: demo.sh [options] <arg>...
set -euo pipefail
stage=1
foo_bar="two words"
flag=false
empty=
. {tools}/parse_options.sh
echo "stage=$stage|foo_bar=$foo_bar|flag=$flag|empty=$empty|rest=$*"
"""


@pytest.fixture()
def demo(tmp_path):
    path = tmp_path / "demo.sh"
    path.write_text(SCRIPT.format(tools=TOOLS))
    return lambda *args: run(["bash", str(path), *args], tmp_path)


def test_parse_options_sets_variables(demo):
    r = demo("--stage", "3", "--foo-bar=x y", "--flag", "true", "--empty", "", "pos1", "--not-an-option")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=3|foo_bar=x y|flag=true|empty=|rest=pos1 --not-an-option"
    r = demo("--foo_bar", "z", "--", "--stage")
    assert r.stdout.strip() == "stage=1|foo_bar=z|flag=false|empty=|rest=--stage"


def test_parse_options_rejects_unknown_and_bad_values(demo):
    r = demo("--stgae", "3")
    assert r.returncode != 0 and "unknown option --stgae" in r.stderr and r.stdout == ""
    r = demo("--flag", "yes")
    assert r.returncode != 0 and "--flag expects true or false" in r.stderr
    r = demo("--stage")
    assert r.returncode != 0 and "--stage needs a value" in r.stderr


def test_parse_options_help(demo):
    r = demo("--stage", "7", "--help")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[:2] == ["Demo script for the option parser.", "Usage: demo.sh [options] <arg>..."]
    assert "set -euo pipefail" not in r.stdout and "stage=" not in r.stdout
    options = {ln.split()[0]: ln.split(None, 1)[1:] for ln in lines if ln.startswith("  --")}
    assert options == {"--stage": ["7"], "--foo_bar": ["two words"], "--flag": ["false"], "--empty": []}
    assert run(["bash", "-c", f". {TOOLS}/parse_options.sh; echo ok"], TOOLS).returncode == 0
    assert run(["bash", f"{TOOLS}/parse_options.sh"], TOOLS).returncode != 0  # must be sourced


# ----------------------------------------------------------------------------------------------- run_local.py
def test_run_local_substitutes_job_in_command_and_log(tmp_path):
    r = run([f"{TOOLS}/run_local.py", "JOB=1:3", "log/echo.JOB.log", "echo", "hello", "JOB", ">", "out.JOB"],
            tmp_path)
    assert r.returncode == 0, r.stderr
    for j in (1, 2, 3):
        assert (tmp_path / f"out.{j}").read_text() == f"hello {j}\n"
        log = (tmp_path / "log" / f"echo.{j}.log").read_text().splitlines()
        assert log[0] == f"# echo hello {j} > out.{j}" and log[1].startswith("# Started at")
        assert log[-1].startswith("# Ended (code 0) at")
    # A single job: no JOB, the log path as given; a word with spaces stays one argument.
    r = run([f"{TOOLS}/run_local.py", "one.log", "printf", "%s,", "a b", "c"], tmp_path)
    assert r.returncode == 0 and "\na b,c,# Accounting" in (tmp_path / "one.log").read_text()


def test_run_local_respects_max_jobs_run(tmp_path):
    job = "date +%s.%N > t.JOB.start ; sleep 0.4 ; date +%s.%N > t.JOB.end"
    r = run([f"{TOOLS}/run_local.py", "--max-jobs-run", "2", "JOB=1:5", "log/x.JOB.log", *job.split()], tmp_path)
    assert r.returncode == 0, r.stderr
    spans = [(float((tmp_path / f"t.{j}.start").read_text()), float((tmp_path / f"t.{j}.end").read_text()))
             for j in range(1, 6)]
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap == 2


def test_run_local_failure_names_the_job_and_its_log(tmp_path):
    r = run([f"{TOOLS}/run_local.py", "JOB=1:4", "exp/log/t.JOB.log", "test", "JOB", "-ne", "3"], tmp_path)
    assert r.returncode == 1
    assert "job 3 failed with exit code 1; log is in exp/log/t.3.log" in r.stderr
    assert "1 / 4 jobs failed" in r.stderr and "job 2" not in r.stderr
    assert (tmp_path / "exp/log/t.3.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    assert (tmp_path / "exp/log/t.4.log").exists()  # the other jobs still ran


def test_run_local_usage_errors(tmp_path):
    r = run([f"{TOOLS}/run_local.py", "JOB=1:3", "same.log", "true"], tmp_path)
    assert r.returncode == 1 and "must contain JOB" in r.stderr
    r = run([f"{TOOLS}/run_local.py", "--max-jobs", "2", "x.log", "true"], tmp_path)
    assert r.returncode == 1 and "unknown option --max-jobs" in r.stderr
    # Cluster-only options are accepted so that one recipe line works with both back-ends.
    assert run([f"{TOOLS}/run_local.py", "--gpu", "1", "--mem", "4G", "x.log", "true"], tmp_path).returncode == 0


# ----------------------------------------------------------------------------------------------- run_slurm.py
SLURM_CONF = """# site options
partition = cpu   # the CPU queue
account = speech
time = 1:00:00
mem = 4G
exclusive
"""


@pytest.fixture()
def slurm_dir(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "slurm.conf").write_text(SLURM_CONF)
    return tmp_path


def sbatch_calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_slurm_array_job_through_fake_sbatch(slurm_dir):
    record = slurm_dir / "sbatch.jsonl"
    r = run([f"{TOOLS}/run_slurm.py", "--max-jobs-run", "2", "--gpu", "1", "JOB=1:3", "exp/log/extract.JOB.log",
             "echo", "task", "$SLURM_ARRAY_TASK_ID", "job", "JOB", "of", "$SLURM_ARRAY_JOB_ID", ">", "out.JOB"],
            slurm_dir, FAKE_SBATCH_RECORD=str(record))
    assert r.returncode == 0, r.stderr
    (call,) = sbatch_calls(record)
    opts = call["options"]
    assert {k: opts[k] for k in ("partition", "account", "time", "mem", "exclusive", "gres")} == {
        "partition": "cpu", "account": "speech", "time": "1:00:00", "mem": "4G", "exclusive": True,
        "gres": "gpu:1"}
    assert opts["array"] == "1-3%2" and opts["wait"] is True and call["tasks"] == [1, 2, 3]
    assert opts["output"] == "exp/log/extract.%a.log" and opts["job-name"] == "extract"
    for j in (1, 2, 3):
        assert (slurm_dir / f"out.{j}").read_text() == f"task {j} job {j} of 4242\n"
        log = (slurm_dir / "exp" / "log" / f"extract.{j}.log").read_text().splitlines()
        assert log[0].startswith(f"# echo task $SLURM_ARRAY_TASK_ID job {j} of")
        assert log[-1].startswith("# Ended (code 0)")
    assert (slurm_dir / "exp" / "log" / "q" / "extract.sh").is_file()


def test_run_slurm_failed_task_propagates(slurm_dir):
    r = run([f"{TOOLS}/run_slurm.py", "JOB=1:3", "log/t.JOB.log", "test", "$SLURM_ARRAY_TASK_ID", "-ne", "2"],
            slurm_dir)
    assert r.returncode == 1
    assert "job 2 failed with exit code 1; log is in log/t.2.log" in r.stderr and "job 1 " not in r.stderr


def test_run_slurm_single_job_and_overrides(slurm_dir):
    record = slurm_dir / "sbatch.jsonl"
    conf = slurm_dir / "site.conf"
    conf.write_text("partition = gpu\ngres = gpu:4\n")
    r = run([f"{TOOLS}/run_slurm.py", "--config", str(conf), "--gpu", "0", "--num-threads", "8", "--mem", "16G",
             "log/train.log", "echo", "ok"], slurm_dir, FAKE_SBATCH_RECORD=str(record))
    assert r.returncode == 0, r.stderr
    (call,) = sbatch_calls(record)
    assert "array" not in call["options"] and "gres" not in call["options"]
    assert call["options"]["cpus-per-task"] == "8" and call["options"]["mem"] == "16G"
    assert call["options"]["output"] == "log/train.log"
    assert "\nok\n" in (slurm_dir / "log" / "train.log").read_text()


def test_run_slurm_config_and_submission_errors(slurm_dir, tmp_path_factory):
    (slurm_dir / "conf" / "bad.conf").write_text("partition = cpu\nmy option = 1\n")
    r = run([f"{TOOLS}/run_slurm.py", "--config", "conf/bad.conf", "x.log", "true"], slurm_dir)
    assert r.returncode == 1 and "conf/bad.conf:2:" in r.stderr
    elsewhere = tmp_path_factory.mktemp("noconf")
    r = run([f"{TOOLS}/run_slurm.py", "x.log", "true"], elsewhere)
    assert r.returncode == 1 and "no Slurm config conf/slurm.conf" in r.stderr
    r = run([f"{TOOLS}/run_slurm.py", "x.log", "true"], slurm_dir, FAKE_SBATCH_FAIL="1")
    assert r.returncode == 1 and "Invalid partition" in r.stderr and "did not submit" in r.stderr


# ----------------------------------------------------------------------------------------------- recipes
@pytest.fixture()
def recipe(tmp_path):
    """Copy a recipe as a user would copy it for a new corpus (tools/ one level up, linked)."""
    def copy(name):
        os.symlink(TOOLS, tmp_path / "tools")
        shutil.copytree(os.path.join(ROOT, "egs", name), tmp_path / "egs" / name, symlinks=True,
                        ignore=shutil.ignore_patterns("exp", "data", "corpus"))
        return tmp_path / "egs" / name
    return copy


def commands(stderr: str) -> list[str]:
    """The commands a run.sh printed (its '+ cmd' log lines)."""
    return [ln.split("] + ", 1)[1] for ln in stderr.splitlines() if "] + " in ln]


@pytest.mark.parametrize("name", ["voxceleb", "mini"])
def test_recipe_help_and_unknown_option(recipe, name):
    d = recipe(name)
    r = run(["bash", "run.sh", "--help"], d)
    assert r.returncode == 0 and "Stages:" in r.stdout
    for opt in ("--stage", "--stop_stage", "--nj", "--gpus", "--exp", "--force", "--dry_run"):
        assert f"\n  {opt} " in r.stdout
    r = run(["bash", "run.sh", "--satge", "2"], d)
    assert r.returncode != 0 and "unknown option --satge" in r.stderr


def test_voxceleb_stage_selection_dry_run(recipe):
    d = recipe("voxceleb")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "4", "--stop-stage", "4", "--nj", "3"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert len(cmds) == 4 and cmds[0].startswith("tools/run_local.py --max-jobs-run 4 JOB=1:3 ")
    assert "exp/supervised/emb/vox1/log/extract.JOB.log python -m wesv.bin.extract" in cmds[0]
    assert cmds[0].endswith("--job JOB --num-jobs 3") and "wesv.bin.merge_embeddings" in cmds[1]
    assert "--data data/vox2_dev" in cmds[2]
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "3", "--stop_stage", "3", "--gpus", "4",
             "--nnodes", "2", "--node_rank", "1", "--master_addr", "node7"], d)
    (cmd,) = commands(r.stderr)
    assert cmd.startswith("torchrun --nnodes 2 --node_rank 1 --nproc_per_node 4 --master_addr node7")
    assert cmd.endswith("-m wesv.bin.train --config conf/supervised_ecapa1024.yaml --exp-dir exp/supervised")
    assert not (d / "exp").exists()  # a dry run writes no markers


def test_mini_recipe_dry_run_every_stage(recipe):
    d = recipe("mini")
    r = run(["bash", "run.sh", "--dry_run", "true"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert cmds[0] == "python -m wesv.bin.make_corpus --out corpus --seed 0"
    assert cmds[-1].startswith("python -m wesv.bin.results_table --out exp/RESULTS.md --det-png exp/det.png")
    metrics = [c for c in cmds if "compute_metrics" in c]
    assert [c.split("--system ")[1].split()[0] for c in metrics] == ["baseline", "supervised"]
    assert all("--extra wall\\ time\\ \\(s\\)=" in c for c in metrics)
    assert sum("wesv.bin.extract" in c for c in cmds) == 2
    assert any("--mean-emb exp/supervised/emb/train/xvector.scp" in c for c in cmds)
    # A stage with a marker is skipped; --force true runs it again.
    (d / "exp/.done").mkdir(parents=True)
    (d / "exp/.done/stage_3").write_text("12\n")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "3", "--stop_stage", "3"], d)
    assert commands(r.stderr) == [] and "already done" in r.stderr
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "3", "--stop_stage", "3", "--force", "true"], d)
    assert commands(r.stderr)[0] == "python -m wesv.bin.train --config conf/supervised.yaml --exp-dir exp/supervised"


def test_recipe_refuses_bad_stage_and_missing_wesv(recipe, tmp_path):
    d = recipe("mini")
    r = run(["bash", "run.sh", "--stage", "two"], d)
    assert r.returncode != 0 and "--stage and --stop_stage take numbers" in r.stderr
    fake = tmp_path / "nowesv"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n")  # a python without wesv
    (fake / "python").chmod(0o755)
    r = subprocess.run(["bash", "run.sh", "--dry_run", "true"], cwd=d, capture_output=True, text=True,
                       env=dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}"))
    assert r.returncode != 0 and "pip install -e ." in r.stderr and "+ python" not in r.stderr
