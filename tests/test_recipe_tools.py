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
        "python -m wesv.bin.train --config conf/supervised.yaml --exp-dir exp/supervised --resume")


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
        *system_steps("exp/supervised_ecapa512_moco_init"), *rounds, "plot_rounds", "results_table"]
    trains = [c for c in cmds if tool(c) == "train"]
    assert [(option(c, "--config"), option(c, "--init-from"), option(c, "--data.train")) for c in trains] == [
        ("conf/dino_ecapa512.yaml", None, None), ("conf/moco_ecapa512.yaml", None, None),
        ("conf/supervised_ecapa512.yaml", None, None),
        ("conf/supervised_ecapa512.yaml", "exp/moco/encoder.pt", None),
        ("conf/pseudo_ecapa512.yaml", "exp/dino/encoder.pt", "exp/data/vox2_dev_round1"),
        ("conf/pseudo_ecapa512.yaml", "exp/pseudo_round1/encoder.pt", "exp/data/vox2_dev_round2")]
    assert all(c.startswith("python -m wesv.bin.train ") and " --resume" in c for c in trains)
    clusters = [c for c in cmds if tool(c) == "cluster"]
    assert [(option(c, "--emb"), option(c, "--num-clusters"), option(c, "--num-kmeans"), option(c, "--algorithm"),
             option(c, "--truth-utt2spk"), option(c, "--data")) for c in clusters] == [
        (f"{m}/emb/vox2_dev/xvector.scp", "7500", "50000", "kmeans_ahc", "data/vox2_dev/utt2spk", "data/vox2_dev")
        for m in ("exp/dino", "exp/pseudo_round1")]
    metrics = [c for c in cmds if tool(c) == "compute_metrics"]
    assert [option(c, "--system") for c in metrics[:3]] == [f"DINO (Vox1-{t})" for t in "OEH"]
    assert [option(c, "--extra") for c in metrics] == [None] * 12 + ["NMI=unknown"] * 6  # NMI only for the rounds
    assert option(metrics[9], "--system") == "supervised ECAPA-512 (MoCo init) (Vox1-O)"
    (plot,) = [c for c in cmds if tool(c) == "plot_rounds"]
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
    assert not any("--extra" in c for c in cmds)


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
    (d / "exp/data/vox2_dev_round1/cluster_report.json").write_text(json.dumps({"metrics": {"nmi": 0.951234}}))
    run_env = dict(env(FAKE_PYTHON_RECORD=str(record)))
    run_env["PATH"] = f"{fake}{os.pathsep}{run_env['PATH']}"

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
    assert metrics[metrics.index("--extra") + 1] == "NMI=0.9512"
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
