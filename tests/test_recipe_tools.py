"""Recipe tooling: parse_options.sh, the local and Slurm job runners (fake sbatch), and the recipes' run.sh."""
import json
import os
import re
import shlex
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


def option(cmd: str, name: str) -> str | None:
    """The value of option NAME in a printed command line (None when absent)."""
    words = shlex.split(cmd)
    return words[words.index(name) + 1] if name in words else None


def extras(cmd: str) -> list[str]:
    """Every --extra value of a printed command line."""
    words = shlex.split(cmd)
    return [words[i + 1] for i, w in enumerate(words) if w == "--extra"]


def tool(cmd: str) -> str:
    """The wesv.bin tool a printed command runs ('extract' also through $cmd)."""
    words = shlex.split(cmd)
    return words[words.index("-m") + 1].rsplit(".", 1)[-1] if "-m" in words else words[0]


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
    assert cmd.endswith("-m wesv.bin.train --config conf/supervised_ecapa1024.yaml --exp-dir exp/supervised --resume")
    assert not (d / "exp").exists()  # a dry run writes no markers


def test_mini_recipe_dry_run_every_stage(recipe):
    d = recipe("mini")
    r = run(["bash", "run.sh", "--dry_run", "true"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert cmds[0] == "python -m wesv.bin.make_corpus --out corpus --seed 0"
    assert cmds[-1].startswith("python -m wesv.bin.results_table --out exp/RESULTS.md --det-png exp/det.png")
    metrics = [c for c in cmds if "compute_metrics" in c]
    systems = [option(c, "--system") for c in metrics]
    assert systems[:2] == ["baseline", "supervised"] and {"DINO", "MoCo"} <= set(systems)
    assert all("--extra wall\\ time\\ \\(s\\)=" in c for c in metrics)
    assert {option(c, "--out") for c in cmds if "wesv.bin.extract" in c} >= {
        "exp/supervised/emb/train_mean", "exp/supervised/emb/test"}
    assert any("--mean-emb exp/supervised/emb/train_mean/xvector.scp" in c for c in cmds)
    # A stage with a marker is skipped; --force true runs it again.
    (d / "exp/.done").mkdir(parents=True)
    (d / "exp/.done/stage_3").write_text("12\n")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "3", "--stop_stage", "3"], d)
    assert commands(r.stderr) == [] and "already done" in r.stderr
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "3", "--stop_stage", "3", "--force", "true"], d)
    assert commands(r.stderr)[0] == (
        "python -m wesv.bin.train --config conf/supervised.yaml --exp-dir exp/supervised --resume --seed 0")


def bare_env(tmp_path, python: str | None = None) -> dict:
    """A shell as a new user opens it: env -i with a minimal PATH; PYTHON (a script) becomes its only `python`."""
    path = "/usr/bin:/bin"
    if python is not None:
        fake = tmp_path / "barebin"
        fake.mkdir(exist_ok=True)
        (fake / "python").write_text(python)
        (fake / "python").chmod(0o755)
        path = f"{fake}:{path}"
    return {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8"}


NO_WESV_PYTHON = "#!/bin/sh\nexit 1\n"  # a python without wesv


@pytest.mark.parametrize("name", ["voxceleb", "mini"])
@pytest.mark.parametrize("python", [None, NO_WESV_PYTHON], ids=["no-python", "python-without-wesv"])
def test_recipe_help_and_dry_run_need_no_wesv(recipe, tmp_path, name, python):
    d = recipe(name)
    bare = bare_env(tmp_path, python)
    r = subprocess.run(["bash", "run.sh", "--help"], cwd=d, env=bare, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Stages:" in r.stdout and "\n  --dry_run " in r.stdout, r.stderr
    r = subprocess.run(["bash", "run.sh", "--dry_run", "true"], cwd=d, env=bare, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "printing the commands anyway (a real run would stop)" in r.stderr
    assert any(tool(c) == "train" for c in commands(r.stderr)) and not (d / "exp").exists()
    # A real run stops before its first command, saying how to get wesv.
    r = subprocess.run(["bash", "run.sh", "--stage", "20"], cwd=d, env=bare, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "pip install -e ." in r.stderr and "] + " not in r.stderr


def test_recipe_refuses_bad_stage(recipe):
    d = recipe("mini")
    r = run(["bash", "run.sh", "--stage", "two"], d)
    assert r.returncode != 0 and "--stage and --stop_stage take numbers" in r.stderr


# ----------------------------------------------------------------------------------------------- a copied recipe
def test_copied_recipe_finds_the_installed_tools(tmp_path):
    """`cp -r egs/mini ~/myrecipe`: its tools -> ../../tools link points nowhere; run.sh links the installed copy."""
    d = tmp_path / "myrecipe"
    shutil.copytree(os.path.join(ROOT, "egs", "mini"), d, symlinks=True,
                    ignore=shutil.ignore_patterns("exp", "data", "corpus"))
    assert os.path.islink(d / "tools") and not (d / "tools").exists()
    # Without the environment where wesv is installed there is nothing to link: one clear message.
    r = subprocess.run(["bash", "run.sh", "--help"], cwd=d, env=bare_env(tmp_path), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "tools/parse_options.sh not found" in r.stderr
    assert "activate the environment where wesv is installed" in r.stderr and "No such file" not in r.stderr
    r = run(["bash", "run.sh", "--help"], d)
    assert r.returncode == 0 and "Stages:" in r.stdout, r.stderr
    installed = subprocess.run([sys.executable, "-m", "wesv.bin.tools_dir"], env=env(), capture_output=True,
                               text=True, check=True).stdout.strip()
    assert os.path.realpath(d / "tools") == os.path.realpath(installed)
    assert f"linked tools -> {installed}" in r.stderr
    assert sorted(os.listdir(installed)) == sorted(
        f for f in os.listdir(TOOLS) if os.path.islink(os.path.join(TOOLS, f)))  # tools/ links every one
    r = run(["bash", "run.sh", "--dry_run", "true"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert cmds[0].startswith("python -m wesv.bin.make_corpus") and "linked tools" not in r.stderr
    assert any(c.startswith("tools/run_local.py ") for c in cmds)


def test_setup_ships_the_recipe_tools():
    """setup.py's package_data covers every file of wesv/recipe_tools (so a pip install has them)."""
    import fnmatch
    import runpy
    from unittest import mock

    with mock.patch("setuptools.setup") as setup:
        runpy.run_path(os.path.join(ROOT, "setup.py"))
    patterns = setup.call_args.kwargs["package_data"]["wesv"]
    tools_dir = os.path.join(ROOT, "wesv", "recipe_tools")
    for f in os.listdir(tools_dir):
        assert any(fnmatch.fnmatch(f"recipe_tools/{f}", p) for p in patterns), f
    assert "wesv-tools-dir=wesv.bin.tools_dir:main" in setup.call_args.kwargs["entry_points"]["console_scripts"]


# ----------------------------------------------------------------------------------------------- --force, wall time
FAKE_PYTHON_FAILING = """#!/bin/sh
# 'python -m wesv.bin.X ...' records its arguments (and fails when X is $FAKE_PYTHON_FAIL); the rest: real python.
if [ "$1" = "-m" ]; then
  {real} -c 'import json, os, sys
open(os.environ["FAKE_PYTHON_RECORD"], "a").write(json.dumps(sys.argv[1:]) + "\\n")' "$@"
  [ "$2" != "wesv.bin.${{FAKE_PYTHON_FAIL:-}}" ] || exit 3
  exit 0
fi
exec {real} "$@"
"""


@pytest.fixture()
def fake_recipe(recipe, tmp_path):
    """The mini recipe with faked wesv tools: returns (dir, run(*args, fail=None) -> (process, calls))."""
    d = recipe("mini")
    fake = tmp_path / "fakepy"
    fake.mkdir()
    (fake / "python").write_text(FAKE_PYTHON_FAILING.format(real=sys.executable))
    (fake / "python").chmod(0o755)
    record = tmp_path / "calls.jsonl"

    def recipe_run(*args, fail=None):
        run_env = env(FAKE_PYTHON_RECORD=str(record), FAKE_PYTHON_FAIL=fail or "")
        run_env["PATH"] = f"{fake}{os.pathsep}{run_env['PATH']}"
        record.unlink(missing_ok=True)
        r = subprocess.run(["bash", "run.sh", "--nj", "1", *args], cwd=d, env=run_env, capture_output=True,
                           text=True, timeout=120)
        calls = [json.loads(ln) for ln in record.read_text().splitlines()] if record.exists() else []
        return r, calls
    return d, recipe_run


def touch(path, text="", mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_force_moves_the_old_outputs_aside_and_reruns_the_whole_stage(fake_recipe):
    d, recipe_run = fake_recipe
    for f in ("checkpoints/latest.pt", "encoder.pt", "emb/test/xvector.scp", "emb/train_mean/xvector.scp",
              "eval/test.json"):
        touch(d / "exp/supervised" / f, f)
    touch(d / "exp/.done/stage_3", "12\n")
    (d / "exp/supervised.old.1").mkdir()  # an earlier --force: the next free number is 2
    # Dry run: the move is printed, and what the real run would then do (train from scratch, extract, score).
    r, _ = recipe_run("--stage", "3", "--stop_stage", "3", "--force", "true", "--dry_run", "true")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert cmds[0] == "mv exp/supervised exp/supervised.old.2"
    assert [summary(c) for c in cmds[1:]] == [
        "train exp/supervised", "extract exp/supervised/emb/train_mean",
        "merge_embeddings exp/supervised/emb/train_mean", "extract exp/supervised/emb/test",
        "merge_embeddings exp/supervised/emb/test", "score exp/supervised/scores/test",
        "compute_metrics exp/supervised/eval/test"]
    assert "not extracting again" not in r.stderr and (d / "exp/supervised/encoder.pt").exists()
    # A real run moves it (nothing deleted) and runs every step again.
    r, calls = recipe_run("--stage", "3", "--stop_stage", "3", "--force", "true")
    assert r.returncode == 0, r.stderr
    assert "--force true: moving the old exp/supervised aside to exp/supervised.old.2" in r.stderr
    assert (d / "exp/supervised.old.2/checkpoints/latest.pt").read_text() == "checkpoints/latest.pt"
    assert (d / "exp/supervised.old.2/emb/test/xvector.scp").exists() and (d / "exp/supervised.old.1").is_dir()
    assert [c[1].rsplit(".", 1)[-1] for c in calls] == [
        "train", "extract", "merge_embeddings", "extract", "merge_embeddings", "score", "compute_metrics"]
    assert (d / "exp/.done/stage_3").is_file()
    # Without --force a done stage is skipped, and nothing is moved.
    r, calls = recipe_run("--stage", "3", "--stop_stage", "3")
    assert calls == [] and "already done" in r.stderr and not (d / "exp/supervised.old.3").exists()


def test_force_moves_the_pseudo_label_rounds_aside(recipe):
    d = recipe("mini")
    for f in ("exp/round1/encoder.pt", "exp/data/train_round1/cluster_report.json", "exp/dino/emb/train/xvector.scp",
              "exp/purity_rounds.png"):
        touch(d / f)
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "7", "--stop_stage", "7", "--force", "true"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    assert cmds[:3] == ["mv exp/round1 exp/round1.old.1", "mv exp/data/train_round1 exp/data/train_round1.old.1",
                        "mv exp/purity_rounds.png exp/purity_rounds.png.old.1"]
    # DINO's train embeddings are stage 4's (not moved): reused; round 1 clusters again.
    assert "exp/dino/emb/train/xvector.scp is there; not extracting again" in r.stderr
    assert summary(cmds[3]) == "cluster exp/data/train_round1"


def test_embeddings_older_than_their_model_are_extracted_again(recipe):
    d = recipe("mini")
    touch(d / "exp/dino/emb/test/xvector.scp", mtime=1_000_000)
    touch(d / "exp/dino/emb/train_mean/xvector.scp", mtime=3_000_000)
    touch(d / "exp/dino/encoder.pt", mtime=2_000_000)  # trained further after the test set was extracted
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "4", "--stop_stage", "4"], d)
    assert r.returncode == 0, r.stderr
    assert "exp/dino/emb/train_mean/xvector.scp is there; not extracting again" in r.stderr
    assert "exp/dino/encoder.pt is newer than exp/dino/emb/test/xvector.scp" in r.stderr
    assert [summary(c) for c in commands(r.stderr)][:4] == [
        "train exp/dino", "mv", "extract exp/dino/emb/test", "merge_embeddings exp/dino/emb/test"]


def test_wall_time_sums_the_runs_of_a_resumed_stage(fake_recipe):
    d, recipe_run = fake_recipe
    # A first run stops in training (the trainer fails; a kill or scancel ends the same way): its seconds are kept.
    r, calls = recipe_run("--stage", "4", "--stop_stage", "4", fail="train")
    assert r.returncode == 3 and [c[1] for c in calls] == ["wesv.bin.train"]
    assert len((d / "exp/dino/.wall_seconds").read_text().split()) == 1
    assert len((d / "exp/.done/stage_4.wall_seconds").read_text().split()) == 1
    assert not (d / "exp/.done/stage_4").exists()
    # Say that run had taken 1289 s (and the stage 1300 s): the resumed run reports them plus its own.
    (d / "exp/dino/.wall_seconds").write_text("1289\n")
    (d / "exp/.done/stage_4.wall_seconds").write_text("1300\n")
    r, calls = recipe_run("--stage", "4", "--stop_stage", "4")
    assert r.returncode == 0, r.stderr
    (metrics,) = [c for c in calls if c[1] == "wesv.bin.compute_metrics"]
    wall = metrics[metrics.index("--extra") + 1]
    assert wall.startswith("wall time (s)=") and 1289 <= int(wall.split("=")[1]) < 1289 + 60
    runs = [int(x) for x in (d / "exp/dino/.wall_seconds").read_text().split()]
    assert runs[0] == 1289 and len(runs) == 2
    assert 1300 <= int((d / "exp/.done/stage_4").read_text()) < 1360
    assert not (d / "exp/.done/stage_4.wall_seconds").exists()
    # --force starts the count again (the old runs' time went aside with their outputs).
    r, calls = recipe_run("--stage", "4", "--stop_stage", "4", "--force", "true")
    (metrics,) = [c for c in calls if c[1] == "wesv.bin.compute_metrics"]
    assert int(metrics[metrics.index("--extra") + 1].split("=")[1]) < 60
    assert (d / "exp/dino.old.1/.wall_seconds").exists() and int((d / "exp/.done/stage_4").read_text()) < 60


# ----------------------------------------------------------------------------------------------- VoxCeleb SSL stages
def system_steps(d: str) -> list[str]:
    """What train_eval runs for the system in exp dir D, as summarised by `summary`."""
    return [f"train {d}", f"extract {d}/emb/vox1", f"merge_embeddings {d}/emb/vox1", f"extract {d}/emb/vox2_dev",
            f"merge_embeddings {d}/emb/vox2_dev"] + [
        f"{t} {d}/{kind}/vox1_{lst}" for lst in "OEH"
        for t, kind in (("score", "scores"), ("compute_metrics", "eval"))]


def summary(cmd: str) -> str:
    """A printed command reduced to its tool and the main thing it writes."""
    name = tool(cmd)
    if name == "train":
        return f"train {option(cmd, '--exp-dir')}"
    if name == "compute_metrics":
        return f"compute_metrics {option(cmd, '--json').rsplit('.', 1)[0]}"
    if name == "score":
        return f"score {option(cmd, '--out').rsplit('.', 1)[0]}"
    if name in ("extract", "merge_embeddings", "cluster"):
        return f"{name} {option(cmd, '--out')}"
    return name


def test_voxceleb_ssl_stages_dry_run(recipe):
    d = recipe("voxceleb")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "10", "--stop_stage", "20", "--gpus", "0",
             "--nj", "2"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    rounds = []
    for k in (1, 2):  # DINO's VoxCeleb2-dev embeddings (stage 10) serve round 1; round 1's serve round 2
        rounds += [f"cluster exp/data/vox2_dev_round{k}", *system_steps(f"exp/pseudo_round{k}")]
    assert [summary(c) for c in cmds] == [
        *system_steps("exp/dino"), *system_steps("exp/moco"), *system_steps("exp/supervised_ecapa512"),
        *system_steps("exp/supervised_ecapa512_moco_init"), *rounds, "plot_rounds",
        # C-DINO from DINO's clusters (stage 16), then pseudo-label rounds from it (stage 17)
        "cluster exp/data/vox2_dev_cdino", *system_steps("exp/cdino"), "view_report",
        *[x for k in (1, 2) for x in (f"cluster exp/data/vox2_dev_cdino_round{k}",
                                      *system_steps(f"exp/cdino_pseudo_round{k}"))], "plot_rounds", "results_table"]
    trains = [c for c in cmds if tool(c) == "train"][:6]
    assert [(option(c, "--config"), option(c, "--init-from"), option(c, "--data.train")) for c in trains] == [
        ("conf/dino_ecapa512.yaml", None, None), ("conf/moco_ecapa512.yaml", None, None),
        ("conf/supervised_ecapa512.yaml", None, None),
        ("conf/supervised_ecapa512.yaml", "exp/moco/encoder.pt", None),
        ("conf/pseudo_ecapa512.yaml", "exp/dino/encoder.pt", "exp/data/vox2_dev_round1"),
        ("conf/pseudo_ecapa512.yaml", "exp/pseudo_round1/encoder.pt", "exp/data/vox2_dev_round2")]
    assert all(c.startswith("python -m wesv.bin.train ") and " --resume" in c for c in trains)
    clusters = [c for c in cmds if tool(c) == "cluster"][:2]  # the plain rounds' (then C-DINO's)
    assert [(option(c, "--emb"), option(c, "--num-clusters"), option(c, "--num-kmeans"), option(c, "--algorithm"),
             option(c, "--truth-utt2spk"), option(c, "--data")) for c in clusters] == [
        (f"{m}/emb/vox2_dev/xvector.scp", "7500", "50000", "kmeans_ahc", "data/vox2_dev/utt2spk", "data/vox2_dev")
        for m in ("exp/dino", "exp/pseudo_round1")]
    metrics = [c for c in cmds if tool(c) == "compute_metrics"]
    assert [option(c, "--system") for c in metrics[:3]] == [f"DINO (Vox1-{t})" for t in "OEH"]
    # AMI and NMI only for the rounds; every system's wall time (the first of a run: a few seconds at most).
    rounds_extra = [["AMI=unknown", "NMI=unknown"]] * 6
    assert [[e for e in extras(c) if not e.startswith("wall time (s)=")] for c in metrics] == (
        [[]] * 12 + rounds_extra + [[]] * 3 + rounds_extra)  # ..., C-DINO, rounds from C-DINO
    assert all(0 <= int(extras(c)[-1].split("wall time (s)=")[1]) < 60 for c in metrics)
    assert option(metrics[9], "--system") == "supervised ECAPA-512 (MoCo init) (Vox1-O)"
    plot = [c for c in cmds if tool(c) == "plot_rounds"][0]
    assert shlex.split(plot)[shlex.split(plot).index("--reports") + 1:][:2] == [
        f"exp/data/vox2_dev_round{k}/cluster_report.json" for k in (1, 2)]
    assert option(cmds[-1], "--out") == "exp/RESULTS.md"
    assert not (d / "exp").exists() and not (d / "data").exists()


def test_voxceleb_pseudo_rounds_options(recipe):
    d = recipe("voxceleb")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "13", "--stop_stage", "13", "--num_rounds", "3",
             "--num_clusters", "6000", "--num_kmeans", "30000", "--truth_utt2spk", "", "--gpus", "4",
             "--pseudo_config", "conf/pseudo_resnet34.yaml", "--exp", "exp_r34"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    # Stage 13 alone extracts DINO's VoxCeleb2-dev embeddings itself; without labels: no NMI, no plot.
    assert summary(cmds[0]) == "extract exp_r34/dino/emb/vox2_dev" and "plot_rounds" not in r.stderr
    clusters = [c for c in cmds if tool(c) == "cluster"]
    assert [(option(c, "--out"), option(c, "--num-clusters"), option(c, "--num-kmeans"),
             option(c, "--truth-utt2spk")) for c in clusters] == [
        (f"exp_r34/data/vox2_dev_round{k}", "6000", "30000", None) for k in (1, 2, 3)]
    trains = [c for c in cmds if "wesv.bin.train" in c]
    assert [option(c, "--init-from") for c in trains] == [
        "exp_r34/dino/encoder.pt", "exp_r34/pseudo_round1/encoder.pt", "exp_r34/pseudo_round2/encoder.pt"]
    assert all(c.startswith("torchrun ") and "--nproc_per_node 4" in c and "--config conf/pseudo_resnet34.yaml" in c
               for c in trains)
    assert not any("NMI=" in c for c in cmds)


FAKE_PYTHON = """#!/bin/sh
# python for the recipe: 'python -m wesv.bin.X ...' only records its arguments; anything else is the real python.
if [ "$1" = "-m" ]; then
  exec {real} -c 'import json, os, sys; open(os.environ["FAKE_PYTHON_RECORD"], "a").write(json.dumps(sys.argv[1:]) + "\\n")' "$@"
fi
exec {real} "$@"
"""


def test_voxceleb_pseudo_round_skips_existing_outputs_and_reads_nmi(recipe, tmp_path):
    """A real (not dry) run of stages 13 and 20 whose wesv tools are faked: what is there is not redone."""
    d = recipe("voxceleb")
    fake = tmp_path / "fakepy"
    fake.mkdir()
    (fake / "python").write_text(FAKE_PYTHON.format(real=sys.executable))
    (fake / "python").chmod(0o755)
    record = tmp_path / "calls.jsonl"
    for path in ("exp/dino/encoder.pt", "exp/dino/emb/vox2_dev/xvector.scp", "data/vox1/trials_O"):
        (d / path).parent.mkdir(parents=True, exist_ok=True)
        (d / path).write_text("")
    (d / "exp/data/vox2_dev_round1").mkdir(parents=True)
    (d / "exp/data/vox2_dev_round1/cluster_report.json").write_text(json.dumps({"metrics": {"nmi": 0.951234,
                                                                                              "ami": 0.80127}}))
    run_env = dict(env(FAKE_PYTHON_RECORD=str(record)))
    run_env["PATH"] = f"{fake}{os.pathsep}{run_env['PATH']}"
    (d / "exp/.done").mkdir(parents=True, exist_ok=True)
    for done in (16, 17):  # the C-DINO stages are not what this test is about: marked finished
        (d / f"exp/.done/stage_{done}").write_text("0\n")

    def recipe_run(*args):
        return subprocess.run(["bash", "run.sh", "--gpus", "0", "--nj", "2", *args], cwd=d, env=run_env,
                              capture_output=True, text=True, timeout=120)

    r = recipe_run("--stage", "13", "--stop_stage", "20", "--num_rounds", "1")
    assert r.returncode == 1  # stage 20: the faked compute_metrics wrote no JSON
    assert "no exp/*/eval/vox1_{O,E,H}.json yet" in r.stderr and "no data/vox1/trials_E; skipping" in r.stderr
    assert "exp/dino/emb/vox2_dev/xvector.scp is there; not extracting again" in r.stderr
    assert "exp/data/vox2_dev_round1/cluster_report.json is there; not clustering again" in r.stderr
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    tools = sorted(c[1].rsplit(".", 1)[-1] for c in calls)
    assert tools == ["compute_metrics", "extract", "extract", "extract", "extract", "merge_embeddings",
                     "merge_embeddings", "plot_rounds", "score", "train"]
    (metrics,) = [c for c in calls if c[1] == "wesv.bin.compute_metrics"]
    assert [metrics[i + 1] for i, w in enumerate(metrics) if w == "--extra"][:2] == ["AMI=0.8013", "NMI=0.9512"]
    assert metrics[metrics.index("--system") + 1] == "pseudo-labels round 1 (Vox1-O)"
    (train,) = [c for c in calls if c[1] == "wesv.bin.train"]
    assert train[train.index("--init-from") + 1] == "exp/dino/encoder.pt"
    assert (d / "exp/.done/stage_13").is_file() and not (d / "exp/.done/stage_20").exists()

    for sys_dir, lst in (("pseudo_round1", "O"), ("dino", "H"), ("dino", "O")):
        (d / f"exp/{sys_dir}/eval").mkdir(parents=True, exist_ok=True)
        (d / f"exp/{sys_dir}/eval/vox1_{lst}.json").write_text("{}")
    record.unlink()
    r = recipe_run("--stage", "13", "--stop_stage", "20")
    assert r.returncode == 0, r.stderr
    assert "already done (exp/.done/stage_13)" in r.stderr
    (table,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert table[1:] == ["wesv.bin.results_table", "--out", "exp/RESULTS.md", "exp/dino/eval/vox1_O.json",
                         "exp/pseudo_round1/eval/vox1_O.json", "exp/dino/eval/vox1_H.json"]


def test_voxceleb_configs_load_and_match_for_init_from():
    from wesv.config import load_config

    conf = os.path.join(ROOT, "egs", "voxceleb", "conf")
    names = sorted(f for f in os.listdir(conf) if f.endswith(".yaml"))
    cfgs = {f[:-5]: load_config(os.path.join(conf, f)) for f in names}
    assert {"dino_ecapa512", "moco_ecapa512", "supervised_ecapa512", "pseudo_ecapa512"} <= set(cfgs)
    # --init-from needs the same encoder: MoCo -> supervised ECAPA-512, DINO -> pseudo-label rounds.
    assert cfgs["supervised_ecapa512"].encoder == cfgs["moco_ecapa512"].encoder
    assert cfgs["pseudo_ecapa512"].encoder == cfgs["dino_ecapa512"].encoder
    assert cfgs["pseudo_resnet34"].encoder == cfgs["dino_resnet34"].encoder
    # DLG-LC rounds differ from the plain rounds by the gate and the correction only.
    dlg, plain = cfgs["dlg_lc_ecapa512"], cfgs["pseudo_ecapa512"]
    assert dlg.type == "dlg_lc" and dlg.encoder == plain.encoder
    assert (dlg.data, dlg.augment, dlg.optim, dlg.trainer) == (plain.data, plain.augment, plain.optim, plain.trainer)
    assert {k: v for k, v in vars(dlg.method).items() if k in vars(plain.method)} == vars(plain.method)
    assert (dlg.method.gate_start_epoch, dlg.method.correction_start_epoch) == (5, 9)
    sup, sup1024 = cfgs["supervised_ecapa512"], cfgs["supervised_ecapa1024"]
    assert (sup.method, sup.optim, sup.trainer, sup.data) == (sup1024.method, sup1024.optim, sup1024.trainer,
                                                              sup1024.data)
    for name in ("pseudo_ecapa512", "pseudo_resnet34"):  # METHODS.md: AAM s=30 m=0.2, SGD, fine-tuned
        c = cfgs[name]
        assert c.type == "classifier" and (c.method.loss, c.method.scale, c.method.margin) == ("aam", 30.0, 0.2)
        assert c.optim.name == "sgd" and c.optim.lr < sup.optim.lr and c.trainer.epochs < sup.trainer.epochs
        assert 0 < c.method.frozen_backbone_epochs < c.trainer.epochs and 0 < c.method.backbone_lr_scale < 1
        assert 2.0 <= c.data.crop_seconds <= 3.0 and (c.augment.noise_dir, c.augment.rir_dir) == (
            "data/musan", "data/rirs")
    # run.sh's default configs exist.
    script = open(os.path.join(ROOT, "egs", "voxceleb", "run.sh")).read()
    for ref in set(re.findall(r"conf/[\w.]+\.yaml", script)):
        assert ref[len("conf/"):] in names, ref


def test_mini_dlg_lc_config_differs_from_the_plain_rounds_by_the_gate_only():
    from wesv.config import load_config

    conf = os.path.join(ROOT, "egs", "mini", "conf")
    dlg, plain = load_config(os.path.join(conf, "dlg_lc.yaml")), load_config(os.path.join(conf, "pseudo.yaml"))
    assert dlg.type == "dlg_lc" and plain.type == "classifier"
    assert (dlg.data, dlg.augment, dlg.encoder, dlg.optim, dlg.trainer) == (plain.data, plain.augment, plain.encoder,
                                                                            plain.optim, plain.trainer)
    assert {k: v for k, v in vars(dlg.method).items() if k in vars(plain.method)} == vars(plain.method)


def test_voxceleb_wavlm_stages_run_only_with_a_model_dir(recipe):
    d = recipe("voxceleb")
    args = ["bash", "run.sh", "--dry_run", "true", "--stage", "14", "--stop_stage", "15", "--gpus", "0", "--nj", "2",
            "--num_rounds", "1", "--truth_utt2spk", "data/vox2_dev/utt2spk"]
    r = run(args, d)
    assert r.returncode == 0 and commands(r.stderr) == [] and "skipping the WavLM stages 14-15" in r.stderr
    (d / "pretrained/wavlm-base-plus").mkdir(parents=True)
    (d / "pretrained/wavlm-base-plus/config.json").write_text("{}")
    cmds = commands(run(args, d).stderr)
    trains = [c for c in cmds if tool(c) == "train"]
    assert [option(c, "--exp-dir") for c in trains] == ["exp/wavlm_mhfa_supervised", "exp/wavlm_mhfa_round1",
                                                       "exp/wavlm_mhfa_lmft"]
    assert all(option(c, "--encoder.model_dir") == "pretrained/wavlm-base-plus" for c in trains)
    assert option(trains[1], "--type") == "dlg_lc" and option(trains[1], "--init-from") is None  # the pretrained front-end
    assert option(trains[2], "--init-from") == "exp/wavlm_mhfa_round1/encoder.pt"
    assert any(tool(c) == "loss_gate_report" for c in cmds)
    assert run(args[:-2] + ["--ssl_stages", "false"], d).stderr.count("wesv.bin.train") == 0


def test_extract_takes_an_encoder_file(tmp_path):
    """extract MODEL_DIR NAME [ENCODER_FILE]: the file goes to wesv.bin.extract as --model (e.g. averaged weights);
    without it nothing changes; the embeddings are redone when the named file is newer than them."""
    script = tmp_path / "t.sh"
    script.write_text("set -euo pipefail\ndry_run=true\ncmd=tools/run_local.py\nnj=2\n"
                      f". {ROOT}/wesv/recipe_tools/recipe.sh\n"
                      "extract exp/a test exp/a/avg_model.pt\nextract exp/b test\n")
    r = run(["bash", str(script)], tmp_path)
    assert r.returncode == 0, r.stderr
    cmds = [c for c in commands(r.stderr) if "wesv.bin.extract" in c]
    assert option(cmds[0], "--model") == "exp/a/avg_model.pt" and option(cmds[0], "--model-dir") == "exp/a"
    assert option(cmds[1], "--model") is None and option(cmds[1], "--model-dir") == "exp/b"
    emb = tmp_path / "exp/a/emb/test"
    emb.mkdir(parents=True)
    (emb / "xvector.scp").write_text("")
    (tmp_path / "exp/a/avg_model.pt").write_text("")
    os.utime(emb / "xvector.scp", (1_000_000, 1_000_000))
    r = run(["bash", str(script)], tmp_path)
    assert "exp/a/avg_model.pt is newer than exp/a/emb/test/xvector.scp" in r.stderr, r.stderr


def test_mini_num_avg_evaluates_the_averaged_encoder(recipe):
    d = recipe("mini")
    r = run(["bash", "run.sh", "--dry_run", "true", "--stage", "4", "--stop_stage", "4", "--num_avg", "3"], d)
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stderr)
    (avg,) = [c for c in cmds if tool(c) == "average_model"]
    assert option(avg, "--num-avg") == "3" and option(avg, "--out") == "exp/dino/encoder_avg.pt"
    extracts = [c for c in cmds if "wesv.bin.extract" in c]
    assert extracts and all(option(c, "--model") == "exp/dino/encoder_avg.pt" for c in extracts)
    (train,) = [c for c in cmds if tool(c) == "train"]
    assert option(train, "--trainer.keep_checkpoints") == "3"  # enough epoch checkpoints to average
