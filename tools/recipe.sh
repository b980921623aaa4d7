# Shared by every recipe's run.sh (sourced after tools/parse_options.sh): logging, stage bookkeeping, and the
# train / extract steps. A recipe defines its own evaluation (which trial lists, which scoring).
# Expects: stage, stop_stage, exp, force, dry_run, gpus, nnodes, node_rank, master_addr, master_port, nj, cmd;
# optional train_opts (extra overrides for every training run).

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
  system_start=$stage_start   # a stage that trains several systems resets it per system
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
  # shellcheck disable=SC2086  # train_opts is a list of overrides
  set -- "$@" ${train_opts:-}
  if [ "$gpus" -eq 0 ] && [ "$nnodes" -eq 1 ]; then
    step python -m wesv.bin.train --config "$config" --exp-dir "$dir" --resume "$@"
  else
    step torchrun --nnodes "$nnodes" --node_rank "$node_rank" --nproc_per_node "$gpus" \
      --master_addr "$master_addr" --master_port "$master_port" \
      -m wesv.bin.train --config "$config" --exp-dir "$dir" --resume "$@"
  fi
}

# produced PATH: true when PATH exists, or when an earlier step of this run wrote it (also in a dry run, so that
# the printed commands are those a real run would run).
produced_paths=()
produced() {
  [ -e "$1" ] || [[ " ${produced_paths[*]-} " == *" $1 "* ]]
}

# extract MODEL_DIR NAME: embeddings of data/NAME into MODEL_DIR/emb/NAME as $nj array jobs, then merged; skipped
# when MODEL_DIR/emb/NAME/xvector.scp exists (several stages need the same embeddings; delete it to redo).
extract() {
  local dir=$1 name=$2 out=$1/emb/$2
  if produced "$out/xvector.scp"; then
    log "$out/xvector.scp is there; not extracting again"
    return
  fi
  step $cmd JOB=1:"$nj" "$out/log/extract.JOB.log" \
    python -m wesv.bin.extract --model-dir "$dir" --data "data/$name" --out "$out" --job JOB --num-jobs "$nj"
  step python -m wesv.bin.merge_embeddings --out "$out" --num-jobs "$nj" --data "data/$name"
  produced_paths+=("$out/xvector.scp")
}
