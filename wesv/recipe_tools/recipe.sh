# Shared by every recipe's run.sh (sourced after tools/parse_options.sh): logging, stage bookkeeping, wall time,
# and the train / extract steps. A recipe defines its own evaluation (which trial lists, which scoring).
# Expects: stage, stop_stage, exp, force, dry_run, gpus, nnodes, node_rank, master_addr, master_port, nj, cmd;
# optional train_opts (extra overrides for every training run).

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [run.sh${current_stage:+ stage $current_stage}] $*" >&2; }

# A real run needs the python that has wesv; --help (parse_options.sh, before this file) and --dry_run do not.
if ! python -c "import wesv" 2>/dev/null; then
  if $dry_run; then
    log "note: 'python -c \"import wesv\"' fails here; printing the commands anyway (a real run would stop)"
  else
    echo "$0: 'python -c \"import wesv\"' fails with $(command -v python || echo 'no python on PATH')." >&2
    echo "$0: activate the environment where wesv is installed, or install it (repository root):" \
      "pip install -e ." >&2
    exit 1
  fi
fi

# step CMD...: run one command (print it first, quoted for copy and paste); only print it with --dry_run true.
step() {
  local a line=""
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,%+@-]+$ ]]; then line+=" $a"; else line+=" $(printf '%q' "$a")"; fi
  done
  log "+$line"
  if ! $dry_run; then "$@"; fi
}

# produced PATH: true when PATH is there for this run: written by an earlier step of this run (also in a dry run,
# so that the printed commands are those a real run would run), or on disk and not moved aside (move_aside).
produced_paths=()
moved_paths=()
produced() {
  [[ " ${produced_paths[*]-} " == *" $1 "* ]] || { ! moved "$1" && { [ -e "$1" ] || [ -L "$1" ]; }; }
}

# moved PATH: true when PATH, or a dir above it, was moved aside by this run.
moved() {
  local m
  for m in ${moved_paths[@]+"${moved_paths[@]}"}; do
    [[ $1 == "$m" || $1 == "$m"/* ]] && return 0
  done
  return 1
}

# up_to_date FILE INPUT DIR: true when FILE is there for this run and INPUT, what it was made from, is not newer
# (an embedding scp and its encoder.pt, cluster labels and their embeddings). When INPUT is newer (trained further,
# extracted again in this run), DIR (the output dir holding FILE) is moved aside and the answer is false.
up_to_date() {
  produced "$1" || return 1
  [[ " ${produced_paths[*]-} " == *" $1 "* ]] && return 0
  if [[ " ${produced_paths[*]-} " == *" $2 "* ]] || { [ -e "$2" ] && ! moved "$2" && [ "$2" -nt "$1" ]; }; then
    move_aside "$3" "$2 is newer than $1"
    return 1
  fi
}

# move_aside PATH WHY: rename PATH to PATH.old.K (the first free K) with a log line saying WHY; nothing is deleted.
move_aside() {
  local k=1
  while [ -e "$1.old.$k" ] || [ -L "$1.old.$k" ]; do k=$((k + 1)); done
  log "$2: moving the old $1 aside to $1.old.$k"
  step mv "$1" "$1.old.$k"
  moved_paths+=("$1")
}

# begin N TITLE [OUTPUT...]: true when stage N is selected and not already done. OUTPUT are the files and dirs the
# stage writes (experiment dirs, embeddings, cluster labels): with --force true the existing ones are moved aside
# first (move_aside), so the stage reruns whole (training from scratch, extraction, clustering, scoring) instead of
# resuming or reusing what an earlier run left.
begin() {
  local n=$1 title=$2 out
  shift 2
  current_stage=$n
  [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ] || return 1
  if [ -f "$exp/.done/stage_$n" ] && ! $force; then
    log "already done ($exp/.done/stage_$n); skipping (--force true reruns it)"
    return 1
  fi
  log "$title"
  if $force; then
    for out in "$@"; do
      if produced "$out"; then move_aside "$out" "--force true"; fi
    done
    $dry_run || rm -f "$exp/.done/stage_$n" "$exp/.done/stage_$n.wall_seconds"  # bookkeeping of the old outputs
  fi
  stage_start=$(date +%s)
  stage_running=true
  system_start=$stage_start   # the system's wall time, for stages that do not call system_begin
}

# Wall time across resumes. A run that stops before a stage is finished (error, Ctrl-C, SIGTERM from scancel or
# a preemption) appends its seconds to $exp/.done/stage_N.wall_seconds; a system (system_begin DIR) appends each
# run's seconds to DIR/.wall_seconds. The time reported is the sum of those plus this run's, so a stage resumed
# after a stop counts the time spent before the stop too.
stage_running=false
system_dir=""

# sum_seconds FILE: the sum of the numbers in FILE, one a line (0 when there is no FILE).
sum_seconds() {
  if [ -f "$1" ]; then awk '{ s += $1 } END { print s + 0 }' "$1"; else echo 0; fi
}

# system_begin DIR: start timing the system whose outputs go to DIR (ends the previous one).
system_begin() {
  system_end
  system_dir=$1
  system_start=$(date +%s)
}

# system_end: append this run's seconds of the current system to its DIR/.wall_seconds.
system_end() {
  if [ -n "$system_dir" ] && ! $dry_run; then
    mkdir -p "$system_dir" && echo $(($(date +%s) - system_start)) >>"$system_dir/.wall_seconds"
  fi
  system_dir=""
}

# system_seconds: wall time of the current system so far, earlier runs included.
system_seconds() {
  local before=0
  [ -z "$system_dir" ] || before=$(sum_seconds "$system_dir/.wall_seconds")
  echo $((before + $(date +%s) - system_start))
}

# finish: mark the current stage done, with its wall time in seconds (earlier runs of the stage included).
finish() {
  system_end
  local partial=$exp/.done/stage_$current_stage.wall_seconds
  local secs=$(($(sum_seconds "$partial") + $(date +%s) - stage_start))
  log "done in ${secs} s"
  if ! $dry_run; then
    mkdir -p "$exp/.done" && echo "$secs" >"$exp/.done/stage_$current_stage" && rm -f "$partial"
  fi
  stage_running=false
}

# On any exit: a stage or system left unfinished keeps the seconds this run spent on it.
__recipe_on_exit() {
  system_end
  if $stage_running && ! $dry_run; then
    mkdir -p "$exp/.done" && echo $(($(date +%s) - stage_start)) >>"$exp/.done/stage_$current_stage.wall_seconds"
  fi
}
trap __recipe_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# train CONFIG EXP_DIR [ARGS...]: one training run on $nnodes x $gpus devices (one process on the CPU when gpus=0).
# It resumes EXP_DIR if a checkpoint is there (a killed run continues; a finished one does nothing); a stage run
# with --force true moves EXP_DIR aside first, so it trains from scratch.
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

# extract MODEL_DIR NAME [ENCODER_FILE]: embeddings of data/NAME into MODEL_DIR/emb/NAME as $nj array jobs, then
# merged; skipped when MODEL_DIR/emb/NAME/xvector.scp is there (several stages need the same embeddings) and not
# older than the encoder (when it is, the old embeddings are moved aside and extracted again). The encoder is
# MODEL_DIR/encoder.pt unless ENCODER_FILE names another (e.g. the average_model output), passed as --model.
extract() {
  local dir=$1 name=$2 out=$1/emb/$2 model=${3:-$1/encoder.pt}
  local with_model=()
  [ -n "${3:-}" ] && with_model=(--model "$3")
  if up_to_date "$out/xvector.scp" "$model" "$out"; then
    log "$out/xvector.scp is there; not extracting again"
    return
  fi
  step $cmd JOB=1:"$nj" "$out/log/extract.JOB.log" \
    python -m wesv.bin.extract --model-dir "$dir" ${with_model[@]+"${with_model[@]}"} --data "data/$name" \
    --out "$out" --job JOB --num-jobs "$nj"
  step python -m wesv.bin.merge_embeddings --out "$out" --num-jobs "$nj" --data "data/$name"
  produced_paths+=("$out/xvector.scp")
}
