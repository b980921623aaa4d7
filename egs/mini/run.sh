#!/usr/bin/env bash
# Embedded-corpus recipe: the whole toolkit on a small synthetic corpus the recipe builds itself (CPU, minutes).
#
# Usage: cd egs/mini && bash run.sh [--stage N] [--stop_stage M] [--nj J] [--gpus G] ...
#   bash run.sh                                 # everything; results in exp/RESULTS.md
#   bash run.sh --stage 3 --stop_stage 3        # only the supervised reference
#   bash run.sh --dry_run true                  # print the commands, run nothing
#
# Stages:
#   1   corpus: corpus/{train,test,noise,rirs}, linked as data/train, data/test, data/noise, data/rirs
#   2   training-free baseline: embed, score, evaluate
#   3   supervised reference: train (true labels), extract train/test ($nj array jobs), score (mean-subtracted)
#   4   DINO (no labels): train, extract, score
#   5   MoCo (no labels): train, extract, score
#   6   supervised reference initialised from MoCo (the MoCo paper's pretraining claim)
#   7   iterative pseudo-labels from DINO, $num_rounds rounds: cluster (NMI measured) -> train -> extract -> score
#   20  results table exp/RESULTS.md and DET plot exp/det.png of every system in exp/*/eval/
# A finished stage leaves $exp/.done/stage_N (holding its wall time in seconds, summed over resumed runs) and is
# skipped next time unless --force true, which reruns every selected stage whole: its old outputs (exp/dino, ...)
# are moved aside to X.old.K first, so it trains from scratch, extracts, clusters and scores again. Inside a
# stage, training resumes its checkpoint, and embeddings / cluster labels are reused unless their model /
# embeddings are newer. Parallel jobs go through $cmd (cmd.sh: local processes or a Slurm array).
# Outside the repository (a copied recipe) tools/ is linked to the copy installed with wesv (see path.sh).
set -euo pipefail

stage=1
stop_stage=100        # run every stage from $stage on
seed=0                # corpus seed
nj=2                  # shards for extraction
gpus=0                # GPUs per node (0: train on the CPU, one process)
nnodes=1
node_rank=0
master_addr=localhost
master_port=29500
exp=exp
force=false           # true: rerun the selected stages whole (old outputs moved aside to X.old.K)
dry_run=false         # true: print the commands instead of running them
num_rounds=2          # pseudo-label rounds after DINO
corpus_opts=""        # extra make_corpus options, e.g. "--num-train-speakers 20" (the tests shrink the corpus)
train_opts=""         # extra overrides for every training run, e.g. "--trainer.epochs 1"
num_clusters=150      # pseudo-speakers per round (the corpus has 120 train speakers; SSL stages do not know that)

. ./path.sh   # finds wesv's shell tools (tools/); the python with wesv is needed for real runs only
. ./cmd.sh
. tools/parse_options.sh
[[ $stage =~ ^[0-9]+$ && $stop_stage =~ ^[0-9]+$ ]] || { echo "$0: --stage and --stop_stage take numbers" >&2; exit 1; }

. tools/recipe.sh   # log, step, begin/finish (stage markers, --force), system wall time, train, extract


# score_eval SYSTEM DIR [SCORE ARGS...]: score data/test/trials with DIR/emb/test, then EER/minDCF/DET into
# DIR/eval/test.json, with the system's wall time (system_begin; the runs before a resume included).
score_eval() {
  local name=$1 dir=$2
  shift 2
  step python -m wesv.bin.score --trials data/test/trials \
    --enroll-emb "$dir/emb/test/xvector.scp" --test-emb "$dir/emb/test/xvector.scp" "$@" --out "$dir/scores/test.score"
  local secs
  secs=$(system_seconds)
  step python -m wesv.bin.compute_metrics --trials data/test/trials --scores "$dir/scores/test.score" \
    --det-png "$dir/eval/test_det.png" --json "$dir/eval/test.json" --system "$name" --extra "wall time (s)=$secs" \
    ${metrics_extra[@]+"${metrics_extra[@]}"}
}
metrics_extra=()

# evaluate SYSTEM DIR: the sequence every trained system goes through: extract test and a 300-utterance subset of
# train (enough to estimate the mean embedding; the clustering stages extract all of train), score with that mean
# subtracted, evaluate.
evaluate() {
  extract "$2" train_mean
  extract "$2" test
  # also thresholds.json beside the model, for python -m wesv.bin.verify (score_eval sees this local list)
  local metrics_extra=(${metrics_extra[@]+"${metrics_extra[@]}"} --save-thresholds "$2"
    --mean-emb "$2/emb/train_mean/xvector.scp" --eval-set test)
  score_eval "$1" "$2" --mean-emb "$2/emb/train_mean/xvector.scp"
}

if begin 1 "generate the corpus and link its data dirs" corpus data/train_mean; then
  # shellcheck disable=SC2086  # corpus_opts is a list of options
  step python -m wesv.bin.make_corpus --out corpus --seed "$seed" $corpus_opts
  step mkdir -p data
  for d in train test noise rirs; do
    step ln -sfn ../corpus/$d data/$d
  done
  num_utts=$($dry_run && echo 300 || wc -l <data/train/wav.scp)
  step tools/subset_data_dir.sh --random $((num_utts < 300 ? num_utts : 300)) --seed 0 data/train data/train_mean
  finish
fi

if begin 2 "training-free baseline" "$exp/baseline"; then
  system_begin "$exp/baseline"
  step python -m wesv.bin.baseline_embeddings --data data/test --out "$exp/baseline/emb/test"
  score_eval baseline "$exp/baseline"
  finish
fi

if begin 3 "supervised reference ($exp/supervised)" "$exp/supervised"; then
  system_begin "$exp/supervised"
  train conf/supervised.yaml "$exp/supervised"
  evaluate supervised "$exp/supervised"
  finish
fi

# pseudo_round R PREV: round R of pseudo-labelling from the model in PREV. Cluster PREV's train embeddings into
# $exp/data/train_roundR (a data dir whose utt2spk holds cluster ids; the true utt2spk is read only to measure NMI),
# train the classifier on it starting from PREV's encoder, evaluate. Each step is skipped when its output exists
# (and is not older than its input), so a killed round resumes where it stopped.
pseudo_round() {
  local r=$1 prev=$2 dir=$exp/round$1 labels=$exp/data/train_round$1
  system_begin "$dir"
  extract "$prev" train
  if up_to_date "$labels/cluster_report.json" "$prev/emb/train/xvector.scp" "$labels"; then
    log "$labels/cluster_report.json is there; not clustering again"
  else
    step python -m wesv.bin.cluster --emb "$prev/emb/train/xvector.scp" --data data/train --out "$labels" \
      --algorithm kmeans_ahc --num-clusters "$num_clusters" --truth-utt2spk data/train/utt2spk
    produced_paths+=("$labels/cluster_report.json")
  fi
  train conf/pseudo.yaml "$dir" --data.train "$labels" --init-from "$prev/encoder.pt"
  local nmi ami
  nmi=$($dry_run && echo 0 || python -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["metrics"]["nmi"], 4))' "$labels/cluster_report.json")
  ami=$($dry_run && echo 0 || python -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["metrics"]["ami"], 4))' "$labels/cluster_report.json")
  metrics_extra=(--extra "AMI=$ami" --extra "NMI=$nmi")
  evaluate "pseudo-labels round $r" "$dir"
  metrics_extra=()
}

if begin 4 "DINO ($exp/dino)" "$exp/dino"; then
  system_begin "$exp/dino"
  train conf/dino.yaml "$exp/dino"
  evaluate DINO "$exp/dino"
  finish
fi

if begin 5 "MoCo ($exp/moco)" "$exp/moco"; then
  system_begin "$exp/moco"
  train conf/moco.yaml "$exp/moco"
  evaluate MoCo "$exp/moco"
  finish
fi

if begin 6 "supervised reference initialised from MoCo ($exp/supervised_moco_init)" "$exp/supervised_moco_init"; then
  system_begin "$exp/supervised_moco_init"
  train conf/supervised.yaml "$exp/supervised_moco_init" --init-from "$exp/moco/encoder.pt"
  evaluate "supervised (MoCo init)" "$exp/supervised_moco_init"
  finish
fi

if begin 7 "iterative pseudo-labels from DINO: $num_rounds rounds of cluster -> train -> evaluate" \
    $(for r in $(seq 1 "$num_rounds"); do echo "$exp/round$r $exp/data/train_round$r"; done) \
    "$exp/purity_rounds.png"; then
  prev=$exp/dino
  for r in $(seq 1 "$num_rounds"); do
    pseudo_round "$r" "$prev"
    prev=$exp/round$r
  done
  step python -m wesv.bin.plot_rounds --reports $(for r in $(seq 1 "$num_rounds"); do echo "$exp/data/train_round$r/cluster_report.json"; done) \
    --out "$exp/purity_rounds.png"
  finish
fi

if begin 20 "results table" "$exp/RESULTS.md" "$exp/det.png"; then
  # The systems in the order of the stages; any other system evaluated into $exp/*/eval/ comes after them.
  results=()
  for d in baseline supervised dino moco supervised_moco_init $(for r in $(seq 1 "$num_rounds"); do echo round$r; done); do
    [ -f "$exp/$d/eval/test.json" ] && results+=("$exp/$d/eval/test.json")
  done
  for j in "$exp"/*/eval/test.json; do
    [[ " ${results[*]-} " == *" $j "* ]] || { [ -f "$j" ] && results+=("$j"); }
  done
  $dry_run || [ ${#results[@]} -gt 0 ] || { log "no evaluated system in $exp/*/eval/; run the earlier stages first"; exit 1; }
  step python -m wesv.bin.results_table --out "$exp/RESULTS.md" --det-png "$exp/det.png" ${results[@]+"${results[@]}"}
  finish
fi

current_stage=""
log "finished stages $stage to $stop_stage"
