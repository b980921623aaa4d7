#!/usr/bin/env bash
# VoxCeleb recipe: train on VoxCeleb2-dev, evaluate on VoxCeleb1-O/E/H (cleaned lists).
#
# Usage: cd egs/voxceleb && bash run.sh [--stage N] [--stop_stage M] [--vox1_dir D] [--vox2_dir D] ...
#   bash run.sh --stage 1 --stop_stage 2                 # data preparation only
#   bash run.sh --stage 3 --stop_stage 5 --gpus 8        # supervised reference: train, extract, score
#   bash run.sh --stage 3 --stop_stage 3 --nnodes 2 --node_rank 0 --master_addr host0   # on each node
#   bash run.sh --dry_run true                           # print the commands, run nothing
#
# Stages:
#   1  data dirs: VoxCeleb1 test (+ trials_O/E/H), VoxCeleb2-dev train
#   2  augmentation lists: MUSAN, RIRS_NOISES
#   3  train the supervised reference (true speaker labels; the upper bound for the SSL systems)
#   4  extract embeddings of VoxCeleb1 and VoxCeleb2-dev (array job, $nj shards)
#   5  score and evaluate each trial list (EER, minDCF, DET curve)
#   (the self-supervised stages follow, from 10)
# A finished stage leaves $exp/.done/stage_N and is skipped next time unless --force true.
# Parallel jobs go through $cmd (cmd.sh: local processes or a Slurm array); site settings in conf/slurm.conf.
set -euo pipefail

stage=1
stop_stage=100        # run every stage from $stage on
vox1_dir=/data/voxceleb/voxceleb1       # holds wav/ and veri_test2.txt, list_test_all2.txt, list_test_hard2.txt
vox2_dir=/data/voxceleb/voxceleb2/dev   # holds aac/ (m4a files, decoded through ffmpeg)
musan_dir=/data/musan
rirs_dir=/data/RIRS_NOISES
nj=8                  # shards for extraction
gpus=1                # GPUs per node (0: train on the CPU)
nnodes=1
node_rank=0
master_addr=localhost
master_port=29500
exp=exp
force=false           # true: rerun stages that have a .done marker
dry_run=false         # true: print the commands instead of running them

. ./path.sh
. ./cmd.sh
. tools/parse_options.sh
[[ $stage =~ ^[0-9]+$ && $stop_stage =~ ^[0-9]+$ ]] || { echo "$0: --stage and --stop_stage take numbers" >&2; exit 1; }

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [run.sh${current_stage:+ stage $current_stage}] $*" >&2; }

# step CMD...: run one command (print it first, quoted for copy and paste); only print it with --dry_run true.
step() {
  local a line=""
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,%+@-]+$ ]]; then line+=" $a"; else line+=" $(printf '%q' "$a")"; fi
  done
  log "+$line"
  if ! $dry_run; then "$@"; fi
}

# begin N TITLE: true when stage N is selected and not already done.
begin() {
  current_stage=$1
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  if [ -f "$exp/.done/stage_$1" ] && ! $force; then
    log "already done ($exp/.done/stage_$1); skipping (--force true reruns it)"
    return 1
  fi
  log "$2"
  stage_start=$(date +%s)
}

# finish: mark the current stage done, with its wall time in seconds.
finish() {
  local secs=$(($(date +%s) - stage_start))
  log "done in ${secs} s"
  if ! $dry_run; then mkdir -p "$exp/.done" && echo "$secs" >"$exp/.done/stage_$current_stage"; fi
}

# train CONFIG EXP_DIR [ARGS...]: one training run on $nnodes x $gpus devices (one process on the CPU when gpus=0).
# It always resumes EXP_DIR if a checkpoint is there (a killed run continues; a finished one does nothing):
# delete EXP_DIR to train it again from scratch.
train() {
  local config=$1 dir=$2
  shift 2
  if [ "$gpus" -eq 0 ] && [ "$nnodes" -eq 1 ]; then
    step python -m wesv.bin.train --config "$config" --exp-dir "$dir" --resume "$@"
  else
    step torchrun --nnodes "$nnodes" --node_rank "$node_rank" --nproc_per_node "$gpus" \
      --master_addr "$master_addr" --master_port "$master_port" \
      -m wesv.bin.train --config "$config" --exp-dir "$dir" --resume "$@"
  fi
}

# extract MODEL_DIR NAME: embeddings of data/NAME into MODEL_DIR/emb/NAME as $nj array jobs, then merged.
extract() {
  local dir=$1 name=$2
  step $cmd JOB=1:"$nj" "$dir/emb/$name/log/extract.JOB.log" \
    python -m wesv.bin.extract --model-dir "$dir" --data "data/$name" --out "$dir/emb/$name" --job JOB --num-jobs "$nj"
  step python -m wesv.bin.merge_embeddings --out "$dir/emb/$name" --num-jobs "$nj" --data "data/$name"
}

# evaluate SYSTEM MODEL_DIR: score every VoxCeleb1 trial list (mean of VoxCeleb2-dev subtracted) and compute metrics.
evaluate() {
  local name=$1 dir=$2 t
  for t in O E H; do
    [ -f data/vox1/trials_$t ] || $dry_run || { log "no data/vox1/trials_$t; skipping Vox1-$t"; continue; }
    step python -m wesv.bin.score --trials data/vox1/trials_$t \
      --enroll-emb "$dir/emb/vox1/xvector.scp" --test-emb "$dir/emb/vox1/xvector.scp" \
      --mean-emb "$dir/emb/vox2_dev/xvector.scp" --out "$dir/scores/vox1_$t.score"
    step python -m wesv.bin.compute_metrics --trials data/vox1/trials_$t --scores "$dir/scores/vox1_$t.score" \
      --det-png "$dir/eval/vox1_$t.png" --json "$dir/eval/vox1_$t.json" --system "$name (Vox1-$t)"
  done
}

if begin 1 "prepare VoxCeleb1 test + trials and VoxCeleb2-dev train data dirs"; then
  step python -m wesv.bin.prepare_voxceleb --vox1-dir "$vox1_dir" --out data/vox1
  step python -m wesv.bin.prepare_voxceleb --vox2-dir "$vox2_dir" --out data/vox2_dev
  finish
fi

if begin 2 "prepare MUSAN and RIRS_NOISES lists"; then
  step python -m wesv.bin.prepare_musan --musan-dir "$musan_dir" --out data/musan
  step python -m wesv.bin.prepare_rirs --rirs-dir "$rirs_dir" --out data/rirs
  finish
fi

if begin 3 "train the supervised reference ($exp/supervised)"; then
  train conf/supervised_ecapa1024.yaml "$exp/supervised"
  finish
fi

if begin 4 "extract embeddings ($nj jobs)"; then
  extract "$exp/supervised" vox1
  extract "$exp/supervised" vox2_dev
  finish
fi

if begin 5 "score and evaluate Vox1-O/E/H"; then
  evaluate supervised "$exp/supervised"
  finish
fi

# ======================= Self-supervised stages (from 10; added by the lead) =======================
# DINO, MoCo, clustering rounds (pseudo-label data dirs), C-DINO, DLG-LC, WavLM fine-tuning. Each one is
#   if begin N "..."; then train conf/X.yaml "$exp/X"; extract "$exp/X" vox1; extract "$exp/X" vox2_dev;
#     evaluate X "$exp/X"; finish; fi
# ====================================================================================================

current_stage=""
log "finished stages $stage to $stop_stage"
