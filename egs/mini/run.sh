#!/usr/bin/env bash
# Embedded-corpus recipe: the whole toolkit on a small synthetic corpus the recipe builds itself (CPU, minutes).
#
# Usage: cd egs/mini && bash run.sh [--stage N] [--stop_stage M] [--nj J] [--gpus G] ...
#   bash run.sh                                 # everything; results in exp/RESULTS.md
#   bash run.sh --stage 3 --stop_stage 3        # only the supervised reference
#   bash run.sh --dry_run true                  # print the commands, run nothing
#   bash run.sh --profile claims --seeds "0 1 2"   # the claims profile over 3 seeds: runs/claims/RESULTS.md
#
# Stages:
#   1   corpus: corpus/{train,test,noise,rirs}, linked as data/train, data/test, data/noise, data/rirs
#   2   training-free baseline: embed, score, evaluate
#   3   supervised reference: train (true labels), extract train/test ($nj array jobs), score (mean-subtracted)
#   4   DINO (no labels): train, extract, score
#   5   MoCo (no labels): train, extract, score
#   6   supervised reference initialised from MoCo (the MoCo paper's pretraining claim)
#   7   iterative pseudo-labels from DINO, $num_rounds rounds: cluster (NMI measured) -> train -> extract -> score
#   8   $dlg_rounds rounds with DLG-LC (loss-gate + label correction; gate precision measured offline)
#   9   $dlg_rounds multi-modal DLG-LC rounds: audio + face branches (data/train/face.scp) on the same pseudo-labels, fused
#       clustering (audio embeddings + face embeddings; mean face frames before round 1), audio scored alone, plus
#       an audio+face score-fusion row for the last round
#   10  controls of round 1 ($controls; on in the claims profile): the round-1 clusters with shuffled ids (sizes
#       kept), and the true labels (an oracle ceiling, marked as using labels), both trained as round 1 from DINO
#   11  ($mhfa; on in the claims profile) seed 000's front-end, the honest way: pretrain a tiny wav2vec 2.0 (transformers' Wav2Vec2ForPreTraining) on
#       the unlabelled training audio into $exp/ssl_pretrained, loaded as WavLM Base+ would be; supervised MHFA
#   12  ($mhfa) MHFA pseudo-label rounds with DLG-LC ($mhfa_rounds; labels from DINO, then the previous round), each
#       restarting from the pretrained front-end; then large-margin fine-tuning of the last round
#   13  C-DINO ($cdino_mode): DINO continued with some views cut from other utterances of the same cluster (DINO's
#       clusters, fixed; or re-clustered inside the run, progressive); view share and precision measured offline
#   14  pseudo-label rounds from C-DINO ($dlg_rounds)
#   15  ($controls) oracle C-DINO: views drawn by the true speaker (uses labels), the ceiling of stage 13
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
num_clusters=150      # pseudo-speakers per round, ~1.25x the speakers (the profile sets it: demo 150, claims 250)
profile=demo          # demo: every system in < 20 min; claims: larger corpus, longer training, controls (conf/profile_*.sh)
dlg_rounds=1          # DLG-LC and multi-modal rounds, stages 8-9 (the profile sets it: demo 1, claims 2)
mhfa=false            # stages 11-12, wav2vec 2.0 pretraining + MHFA (the profile sets it: demo false, claims true)
controls=false        # stage 10, the round-1 controls (the profile sets it: demo false, claims true)
ssl_pretrain_steps=200   # stage 11: wav2vec 2.0 pretraining steps
mhfa_rounds=1         # stage 12: MHFA pseudo-label rounds
cdino_mode=fixed      # stage 13: fixed (DINO's clusters) or progressive (re-clustered every 2 epochs in the run)
face_weight=1        # weight of the face block in the fused clustering of multi-modal rounds
num_avg=0             # >0: evaluate every trained system with the mean of its last N epoch checkpoints
seeds=""              # e.g. "0 1 2": run the whole recipe once per seed in runs/$profile/seedS, then mean ± std

. ./path.sh   # finds wesv's shell tools (tools/); the python with wesv is needed for real runs only
. ./cmd.sh
all_args=("$@")
# The profile's settings are defaults: read --profile first, so that options given on the command line win.
for ((i = 1; i < $#; i++)); do
  if [ "${!i}" = --profile ]; then j=$((i + 1)); profile=${!j}; fi
done
[ -f "conf/profile_$profile.sh" ] || { echo "$0: no conf/profile_$profile.sh (--profile demo or claims)" >&2; exit 1; }
. "conf/profile_$profile.sh"
. tools/parse_options.sh
[[ $stage =~ ^[0-9]+$ && $stop_stage =~ ^[0-9]+$ ]] || { echo "$0: --stage and --stop_stage take numbers" >&2; exit 1; }
corpus_opts="$profile_corpus_opts $corpus_opts"   # the profile's corpus, then the user's options (last wins)
[ "$num_avg" -le 2 ] || train_opts="$train_opts --trainer.keep_checkpoints $num_avg"   # the configs keep 2

. tools/recipe.sh   # log, step, begin/finish (stage markers, --force), system wall time, train, extract

# --seeds "S1 S2 ...": the whole recipe (these options, but --seed S) once per seed, each in its own copy of the
# recipe runs/$profile/seedS (its own corpus and exp), then the table of mean ± std over the seeds.
if [ -n "$seeds" ]; then
  passed=()
  skip=false
  for a in ${all_args[@]+"${all_args[@]}"}; do
    if $skip; then skip=false; continue; fi
    case $a in --seeds|--seed) skip=true ;; --seeds=*|--seed=*) ;; *) passed+=("$a") ;; esac
  done
  runs=()
  for s in $seeds; do
    d=runs/$profile/seed$s
    step mkdir -p "$d"
    step cp -r run.sh path.sh cmd.sh conf "$d/"
    step ln -sfn "$(cd tools && pwd -P)" "$d/tools"
    log "seed $s: bash run.sh --seed $s ${passed[*]-} (in $d)"
    if ! $dry_run; then (cd "$d" && bash run.sh --seed "$s" ${passed[@]+"${passed[@]}"}); fi
    runs+=("$d")
  done
  step python -m wesv.bin.aggregate_results --out "runs/$profile/RESULTS.md" \
    --title "The $profile profile over seeds $seeds" "${runs[@]}"
  exit 0
fi


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
  local enc=()
  if [ "$num_avg" -gt 0 ]; then  # the mean of the last $num_avg epoch checkpoints (DINO: of the teacher)
    if up_to_date "$2/encoder_avg.pt" "$2/encoder.pt"; then
      log "$2/encoder_avg.pt is there; not averaging again"
    else
      step python -m wesv.bin.average_model --exp-dir "$2" --num-avg "$num_avg" --out "$2/encoder_avg.pt"
    fi
    enc=("$2/encoder_avg.pt")
  fi
  extract "$2" train_mean ${enc[@]+"${enc[@]}"}
  extract "$2" test ${enc[@]+"${enc[@]}"}
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
  train conf/supervised.yaml "$exp/supervised" --seed "$seed" $supervised_opts
  evaluate supervised "$exp/supervised"
  finish
fi

# cluster_extras LABELS: the results-table fields of a round's clusters (AMI and NMI against the true speakers).
cluster_extras() {
  local nmi ami
  nmi=$($dry_run && echo 0 || python -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["metrics"]["nmi"], 4))' "$1/cluster_report.json")
  ami=$($dry_run && echo 0 || python -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["metrics"]["ami"], 4))' "$1/cluster_report.json")
  metrics_extra=(--extra "AMI=$ami" --extra "NMI=$nmi")
}

# gate_extras DIR: measure a DLG-LC run's loss-gate against the true labels (offline) and add its last epoch's
# precision to the results-table fields.
gate_extras() {
  step python -m wesv.bin.loss_gate_report --exp-dir "$1" --truth-utt2spk data/train/utt2spk
  local precision
  precision=$($dry_run && echo 0 || python -c 'import json,sys; p=json.load(open(sys.argv[1]))["epochs"][-1]["gate_precision"]; print("-" if p is None else round(p, 4))' "$1/loss_gate/report.json")
  metrics_extra+=(--extra "gate precision=$precision")
}

# is_dlg_lc CONF [TRAIN ARGS...]: whether a run trains type dlg_lc (its loss-gate is then measured).
is_dlg_lc() {
  local conf=$1
  shift
  grep -q '^type: dlg_lc' "$conf" || [[ " $* " == *" --type dlg_lc "* ]]
}

# pseudo_round R PREV CONF KIND NAME [TRAIN ARGS...]: round R of pseudo-labelling from the model in PREV with
# config CONF. Cluster PREV's train embeddings into $exp/data/train_KIND_R (a data dir whose utt2spk holds cluster
# ids; the true utt2spk is read only to measure AMI/NMI), train on it into $exp/KIND_R (TRAIN ARGS, e.g.
# --init-from PREV/encoder.pt), evaluate. Each step is skipped when its output exists (and is not older than its
# input), so a killed round resumes where it stopped. A DLG-LC round also measures its loss-gate against the true
# labels (wesv.bin.loss_gate_report, offline).
pseudo_round() {
  local r=$1 prev=$2 conf=$3 kind=$4 name=$5
  shift 5
  local dir=$exp/${kind}$r labels=$exp/data/train_${kind}$r
  system_begin "$dir"
  extract "$prev" train
  if up_to_date "$labels/cluster_report.json" "$prev/emb/train/xvector.scp" "$labels"; then
    log "$labels/cluster_report.json is there; not clustering again"
  else
    step python -m wesv.bin.cluster --emb "$prev/emb/train/xvector.scp" --data data/train --out "$labels" \
      --algorithm kmeans_ahc --num-clusters "$num_clusters" --truth-utt2spk data/train/utt2spk
    produced_paths+=("$labels/cluster_report.json")
  fi
  train "$conf" "$dir" --data.train "$labels" "$@" --seed "$seed"
  cluster_extras "$labels"
  if is_dlg_lc "$conf" "$@"; then gate_extras "$dir"; fi
  evaluate "$name" "$dir"
  metrics_extra=()
}

# pseudo_rounds FIRST KIND CONF NAME N INIT [TRAIN ARGS...]: N rounds from the model in FIRST, then the purity
# plot; INIT true: each round starts from the previous round's encoder (--init-from), false: from CONF's own
# initialisation (the MHFA rounds restart from the pretrained front-end, as seed 000's code does).
pseudo_rounds() {
  local prev=$1 kind=$2 conf=$3 name=$4 n=$5 init=$6
  shift 6
  for r in $(seq 1 "$n"); do
    local from=()
    $init && from=(--init-from "$prev/encoder.pt")
    pseudo_round "$r" "$prev" "$conf" "$kind" "$name round $r" ${from[@]+"${from[@]}"} "$@"
    prev=$exp/$kind$r
  done
  step python -m wesv.bin.plot_rounds --reports $(for r in $(seq 1 "$n"); do echo "$exp/data/train_$kind$r/cluster_report.json"; done) \
    --out "$exp/purity_${kind}s.png"
}

# round_outputs KIND [N]: what a stage of N (default $num_rounds) rounds writes (moved aside by --force)
round_outputs() {
  for r in $(seq 1 "${2:-$num_rounds}"); do echo "$exp/$1$r $exp/data/train_$1$r"; done
  echo "$exp/purity_${1}s.png"
}

if begin 4 "DINO ($exp/dino)" "$exp/dino"; then
  system_begin "$exp/dino"
  train conf/dino.yaml "$exp/dino" --seed "$seed" $dino_opts
  evaluate DINO "$exp/dino"
  finish
fi

if begin 5 "MoCo ($exp/moco)" "$exp/moco"; then
  system_begin "$exp/moco"
  train conf/moco.yaml "$exp/moco" --seed "$seed" $moco_opts
  evaluate MoCo "$exp/moco"
  finish
fi

if begin 6 "supervised reference initialised from MoCo ($exp/supervised_moco_init)" "$exp/supervised_moco_init"; then
  system_begin "$exp/supervised_moco_init"
  train conf/supervised.yaml "$exp/supervised_moco_init" --init-from "$exp/moco/encoder.pt" --seed "$seed" \
    $supervised_opts
  evaluate "supervised (MoCo init)" "$exp/supervised_moco_init"
  finish
fi

if begin 7 "iterative pseudo-labels from DINO: $num_rounds rounds of cluster -> train -> evaluate" \
    $(round_outputs round); then
  # shellcheck disable=SC2086  # pseudo_opts is a list of overrides
  pseudo_rounds "$exp/dino" round conf/pseudo.yaml "pseudo-labels" "$num_rounds" true $pseudo_opts
  finish
fi

if begin 8 "DLG-LC pseudo-labels from DINO: $dlg_rounds rounds with the loss-gate and label correction" \
    $(round_outputs dlg_round "$dlg_rounds"); then
  # shellcheck disable=SC2086
  pseudo_rounds "$exp/dino" dlg_round conf/dlg_lc.yaml "DLG-LC" "$dlg_rounds" true $pseudo_opts
  finish
fi

# mm_round R PREV: a multi-modal DLG-LC round. Cluster the fused train embeddings of PREV (its audio embeddings and
# its face branch's, or the mean face frames when PREV has no face branch) into $exp/data/train_mm_roundR, train
# conf/dlg_lc_mm.yaml's audio and face branches on them (audio from PREV's encoder), evaluate on audio alone.
mm_round() {
  local r=$1 prev=$2 dir=$exp/mm_round$1 labels=$exp/data/train_mm_round$1 face_emb=$2/emb/train_face
  system_begin "$dir"
  extract "$prev" train
  local branch=()
  [ -f "$prev/branch_face.pt" ] && branch=(--model "$prev/branch_face.pt")
  if up_to_date "$face_emb/xvector.scp" "$prev/encoder.pt" "$face_emb"; then
    log "$face_emb/xvector.scp is there; not extracting again"
  else
    step python -m wesv.bin.extract_stream ${branch[@]+"${branch[@]}"} --data data/train \
      --stream data/train/face.scp --out "$face_emb"
  fi
  if up_to_date "$labels/cluster_report.json" "$face_emb/xvector.scp" "$labels"; then
    log "$labels/cluster_report.json is there; not clustering again"
  else
    step python -m wesv.bin.cluster --emb "$prev/emb/train/xvector.scp" --emb "$face_emb/xvector.scp" \
      --emb-weights "1,$face_weight" --data data/train --out "$labels" --algorithm kmeans_ahc \
      --num-clusters "$num_clusters" --truth-utt2spk data/train/utt2spk
    produced_paths+=("$labels/cluster_report.json")
  fi
  train conf/dlg_lc_mm.yaml "$dir" --data.train "$labels" --method.stream_dir data/train \
    --init-from "$prev/encoder.pt" --seed "$seed" $pseudo_opts
  cluster_extras "$labels"
  gate_extras "$dir"
  evaluate "multi-modal DLG-LC round $r" "$dir"
  metrics_extra=()
}

if begin 9 "multi-modal DLG-LC from DINO: $dlg_rounds rounds, audio + face branches, fused clustering" \
    $(round_outputs mm_round "$dlg_rounds") "$exp/mm_fusion"; then
  prev=$exp/dino
  for r in $(seq 1 "$dlg_rounds"); do
    mm_round "$r" "$prev"
    prev=$exp/mm_round$r
  done
  step python -m wesv.bin.plot_rounds --reports $(for r in $(seq 1 "$dlg_rounds"); do echo "$exp/data/train_mm_round$r/cluster_report.json"; done) \
    --out "$exp/purity_mm_rounds.png"
  # The last round's audio and face scores fused (z-normalised, equal weights): the audio+visual row.
  system_begin "$exp/mm_fusion"
  step python -m wesv.bin.extract_stream --model "$prev/branch_face.pt" --data data/test \
    --stream data/test/face.scp --out "$exp/mm_fusion/emb/test_face"
  step python -m wesv.bin.score --trials data/test/trials --enroll-emb "$exp/mm_fusion/emb/test_face/xvector.scp" \
    --test-emb "$exp/mm_fusion/emb/test_face/xvector.scp" --out "$exp/mm_fusion/scores/face.score"
  step python -m wesv.bin.fuse_scores --scores "$prev/scores/test.score" "$exp/mm_fusion/scores/face.score" \
    --out "$exp/mm_fusion/scores/test.score"
  secs=$(system_seconds)
  step python -m wesv.bin.compute_metrics --trials data/test/trials --scores "$exp/mm_fusion/scores/test.score" \
    --det-png "$exp/mm_fusion/eval/test_det.png" --json "$exp/mm_fusion/eval/test.json" \
    --system "multi-modal DLG-LC round $dlg_rounds, audio + face score fusion" --extra "wall time (s)=$secs"
  finish
fi

if $controls && begin 10 "controls of round 1: shuffled cluster ids, and the true labels (oracle)" \
    "$exp/control_shuffled" "$exp/data/train_round1_shuffled" "$exp/oracle_labels"; then
  [ -f "$exp/data/train_round1/utt2spk" ] || $dry_run || { log "no $exp/data/train_round1: run stage 7 first"; exit 1; }
  system_begin "$exp/control_shuffled"
  step python -m wesv.bin.shuffle_labels --data "$exp/data/train_round1" --out "$exp/data/train_round1_shuffled" \
    --seed "$seed"
  train conf/pseudo.yaml "$exp/control_shuffled" --data.train "$exp/data/train_round1_shuffled" \
    --init-from "$exp/dino/encoder.pt" --seed "$seed" $pseudo_opts
  evaluate "control: round 1 on shuffled cluster ids" "$exp/control_shuffled"
  system_begin "$exp/oracle_labels"
  train conf/pseudo.yaml "$exp/oracle_labels" --data.train data/train --init-from "$exp/dino/encoder.pt" \
    --seed "$seed" $pseudo_opts
  evaluate "oracle: round 1 on true labels (uses labels)" "$exp/oracle_labels"
  finish
fi

if $mhfa && begin 11 "SSL front-end + MHFA: pretrain a tiny wav2vec 2.0 on the unlabelled training audio, supervised MHFA" \
    "$exp/ssl_pretrained" "$exp/mhfa_supervised"; then
  if [ -f "$exp/ssl_pretrained/config.json" ]; then
    log "$exp/ssl_pretrained is there; not pretraining again"
  else
    step python -m wesv.bin.pretrain_ssl --data data/train --out "$exp/ssl_pretrained" --config-preset tiny \
      --steps "$ssl_pretrain_steps" --seed "$seed"
  fi
  system_begin "$exp/mhfa_supervised"
  # shellcheck disable=SC2086
  train conf/mhfa.yaml "$exp/mhfa_supervised" --encoder.model_dir "$exp/ssl_pretrained" --seed "$seed" $mhfa_opts
  evaluate "supervised MHFA (true labels; wav2vec 2.0 tiny pretrained here)" "$exp/mhfa_supervised"
  finish
fi

if $mhfa && begin 12 "MHFA DLG-LC pseudo-label rounds from DINO ($mhfa_rounds), then large-margin fine-tuning" \
    $(round_outputs mhfa_round "$mhfa_rounds") "$exp/mhfa_lmft"; then
  # shellcheck disable=SC2086
  pseudo_rounds "$exp/dino" mhfa_round conf/mhfa.yaml "MHFA DLG-LC" "$mhfa_rounds" false --type dlg_lc \
    --encoder.model_dir "$exp/ssl_pretrained" $mhfa_opts
  last=$exp/mhfa_round$mhfa_rounds
  system_begin "$exp/mhfa_lmft"
  # shellcheck disable=SC2086
  train conf/mhfa_lmft.yaml "$exp/mhfa_lmft" --data.train "$exp/data/train_mhfa_round$mhfa_rounds" \
    --init-from "$last/encoder.pt" --encoder.model_dir "$exp/ssl_pretrained" --seed "$seed" $mhfa_opts
  evaluate "MHFA DLG-LC round $mhfa_rounds + large-margin fine-tuning" "$exp/mhfa_lmft"
  finish
fi

# Stage 13's cluster settings: fixed = DINO's train embeddings clustered once into
# $exp/data/train_cdino; progressive = the run re-clusters its teacher's embeddings itself every 2 epochs.
if begin 13 "C-DINO from DINO ($cdino_mode clustering): views from other utterances of the same cluster" \
    "$exp/cdino" "$exp/data/train_cdino"; then
  system_begin "$exp/cdino"
  if [ "$cdino_mode" = fixed ]; then
    extract "$exp/dino" train
    if up_to_date "$exp/data/train_cdino/cluster_report.json" "$exp/dino/emb/train/xvector.scp" "$exp/data/train_cdino"; then
      log "$exp/data/train_cdino/cluster_report.json is there; not clustering again"
    else
      step python -m wesv.bin.cluster --emb "$exp/dino/emb/train/xvector.scp" --data data/train \
        --out "$exp/data/train_cdino" --algorithm kmeans_ahc --num-clusters "$num_clusters" \
        --truth-utt2spk data/train/utt2spk
    fi
    cd_args=(--method.cluster_data "$exp/data/train_cdino")
  else
    cd_args=(--method.cluster_data null --method.recluster_every 2 --method.recluster_num_clusters "$num_clusters")
  fi
  # shellcheck disable=SC2086
  train conf/cdino.yaml "$exp/cdino" --method.continue_from "$exp/dino" "${cd_args[@]}" --seed "$seed" $cdino_opts
  step python -m wesv.bin.view_report --exp-dir "$exp/cdino" --truth-utt2spk data/train/utt2spk
  evaluate "C-DINO ($cdino_mode)" "$exp/cdino"
  finish
fi

if begin 14 "pseudo-labels from C-DINO: $dlg_rounds rounds" $(round_outputs cdino_round "$dlg_rounds"); then
  # shellcheck disable=SC2086
  pseudo_rounds "$exp/cdino" cdino_round conf/pseudo.yaml "pseudo-labels from C-DINO" "$dlg_rounds" true $pseudo_opts
  finish
fi

if $controls && begin 15 "oracle C-DINO: views drawn by true speaker (USES LABELS)" "$exp/cdino_oracle" \
    "$exp/data/train_oracle_views"; then
  system_begin "$exp/cdino_oracle"
  step mkdir -p "$exp/data/train_oracle_views"
  step cp data/train/utt2spk "$exp/data/train_oracle_views/"
  step touch "$exp/data/train_oracle_views/ORACLE_LABELS"
  # shellcheck disable=SC2086
  train conf/cdino.yaml "$exp/cdino_oracle" --method.continue_from "$exp/dino" \
    --method.cluster_data "$exp/data/train_oracle_views" --method.oracle_labels true --seed "$seed" $cdino_opts
  evaluate "oracle C-DINO: views by true speaker (uses labels)" "$exp/cdino_oracle"
  finish
fi

if begin 20 "results table" "$exp/RESULTS.md" "$exp/det.png"; then
  # The systems in the order of the stages; any other system evaluated into $exp/*/eval/ comes after them.
  results=()
  for d in baseline supervised dino moco supervised_moco_init $(for r in $(seq 1 "$num_rounds"); do echo round$r; done) $(for r in $(seq 1 "$dlg_rounds"); do echo dlg_round$r; done) $(for r in $(seq 1 "$dlg_rounds"); do echo mm_round$r; done) mm_fusion control_shuffled oracle_labels mhfa_supervised $(for r in $(seq 1 "$mhfa_rounds"); do echo mhfa_round$r; done) mhfa_lmft cdino $(for r in $(seq 1 "$dlg_rounds"); do echo cdino_round$r; done) cdino_oracle; do
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
