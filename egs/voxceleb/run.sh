#!/usr/bin/env bash
# VoxCeleb recipe: train on VoxCeleb2-dev, evaluate on VoxCeleb1-O/E/H (cleaned lists).
#
# Usage: cd egs/voxceleb && bash run.sh [--stage N] [--stop_stage M] [--vox1_dir D] [--vox2_dir D] ...
#   bash run.sh --stage 1 --stop_stage 2                 # data preparation only
#   bash run.sh --stage 3 --stop_stage 5 --gpus 8        # supervised reference: train, extract, score
#   bash run.sh --stage 3 --stop_stage 3 --nnodes 2 --node_rank 0 --master_addr host0   # on each node
#   bash run.sh --stage 10 --gpus 4                      # the self-supervised systems and the results table
#   rm exp/.done/stage_13; bash run.sh --stage 13 --stop_stage 13 --num_rounds 4   # 2 more rounds (1-2 reused)
#   bash run.sh --dry_run true                           # print the commands, run nothing
#
# Stages:
#   1   data dirs: VoxCeleb1 test (+ trials_O/E/H), VoxCeleb2-dev train
#   2   augmentation lists: MUSAN, RIRS_NOISES
#   3   train the supervised reference (true speaker labels; the upper bound for the SSL systems)
#   4   extract embeddings of VoxCeleb1 and VoxCeleb2-dev (array job, $nj shards)
#   5   score and evaluate each trial list (EER, minDCF, DET curve)
#   10  DINO without labels ($dino_config): train, extract VoxCeleb1 + VoxCeleb2-dev, evaluate Vox1-O/E/H
#   11  MoCo without labels ($moco_config): the same
#   12  supervised ECAPA-512 ($supervised_ssl_config) from random weights and from the MoCo encoder: the same, so
#       that RESULTS.md tests the MoCo paper's claim (MoCo initialisation -> lower EER)
#   13  iterative pseudo-labels from DINO, $num_rounds rounds; round R: extract VoxCeleb2-dev with the previous
#       model, cluster it (k-means to $num_kmeans, then AHC of the centroids to $num_clusters) into
#       $exp/data/vox2_dev_roundR, train $pseudo_config from the previous encoder, evaluate (with the NMI of the
#       clusters against $truth_utt2spk); then the NMI / purity plot over rounds ($exp/pseudo_rounds.png).
#       --dlg_lc true: the rounds train $dlg_config (loss-gate + label correction) into $exp/dlg_roundR instead
#   16  C-DINO ($cdino_config, $cdino_mode): DINO continued with views from other utterances of the same cluster
#   17  pseudo-label rounds from C-DINO (DLG-LC with --dlg_lc true: seed 001's whole system)
#   14  supervised WavLM Base+ + MHFA ($mhfa_config, front-end from $ssl_model_dir): seed 000's reference
#   15  WavLM + MHFA pseudo-label rounds with DLG-LC from DINO (each from the pretrained front-end), then
#       large-margin fine-tuning ($mhfa_lmft_config) of the last round
#   20  results table $exp/RESULTS.md of every system's $exp/*/eval/vox1_{O,E,H}.json
# A finished stage leaves $exp/.done/stage_N (its wall time in seconds, summed over resumed runs) and is skipped
# next time unless --force true, which reruns every selected stage whole: its old outputs are moved aside to
# X.old.K first (exp/dino -> exp/dino.old.1), so it trains from scratch, extracts, clusters and scores again.
# Inside a stage, training resumes its checkpoint, and extraction and clustering are skipped when their output
# exists and is not older than its input (the model, the embeddings). Parallel jobs go through $cmd (cmd.sh: local
# processes or a Slurm array); site settings in conf/slurm.conf. Outside the repository (a copied recipe) tools/
# is linked to the copy installed with wesv (see path.sh).
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
force=false           # true: rerun the selected stages whole (old outputs moved aside to X.old.K)
dry_run=false         # true: print the commands instead of running them
dino_config=conf/dino_ecapa512.yaml
moco_config=conf/moco_ecapa512.yaml
supervised_ssl_config=conf/supervised_ecapa512.yaml   # stage 12: its encoder must equal the MoCo config's
pseudo_config=conf/pseudo_ecapa512.yaml   # its encoder must equal the DINO config's (ResNet34: *_resnet34.yaml)
num_rounds=2          # pseudo-label rounds after DINO (METHODS.md: 2-5)
dlg_lc=false          # true: the rounds train $dlg_config (loss-gate + label correction) into $exp/dlg_roundR
dlg_config=conf/dlg_lc_ecapa512.yaml   # DLG-LC rounds; its encoder must equal the DINO config's
ssl_model_dir=pretrained/wavlm-base-plus   # stages 14-15: a local transformers speech model dir (WavLM Base+)
cdino_config=conf/cdino_ecapa512.yaml   # stage 16; its encoder and head must equal the DINO config's
cdino_mode=fixed      # stage 16: fixed (DINO's clusters) or progressive (re-clustered inside the run)
ssl_stages=auto       # stages 14-15: auto = run them when $ssl_model_dir/config.json exists (else skip, logged)
mhfa_config=conf/wavlm_mhfa.yaml
mhfa_lmft_config=conf/mhfa_lmft.yaml
num_clusters=7500     # pseudo-speakers per round (VoxCeleb2-dev has 5,994 speakers; SSL stages do not know that)
num_kmeans=50000      # k-means clusters before the agglomeration of their centroids down to $num_clusters
truth_utt2spk=data/vox2_dev/utt2spk   # true labels, read only to measure NMI / purity; empty: no labels

. ./path.sh   # finds wesv's shell tools (tools/); the python with wesv is needed for real runs only
. ./cmd.sh
. tools/parse_options.sh
[[ $stage =~ ^[0-9]+$ && $stop_stage =~ ^[0-9]+$ ]] || { echo "$0: --stage and --stop_stage take numbers" >&2; exit 1; }

. tools/recipe.sh   # log, step, begin/finish (stage markers, --force), system wall time, train, extract

# evaluate SYSTEM MODEL_DIR: score every VoxCeleb1 trial list (mean of VoxCeleb2-dev subtracted) and compute metrics
# (with the fields of $metrics_extra, e.g. --extra NMI=0.95, in each JSON, and the system's wall time when it was
# timed with system_begin).
evaluate() {
  local name=$1 dir=$2 t
  for t in O E H; do
    [ -f data/vox1/trials_$t ] || $dry_run || { log "no data/vox1/trials_$t; skipping Vox1-$t"; continue; }
    step python -m wesv.bin.score --trials data/vox1/trials_$t \
      --enroll-emb "$dir/emb/vox1/xvector.scp" --test-emb "$dir/emb/vox1/xvector.scp" \
      --mean-emb "$dir/emb/vox2_dev/xvector.scp" --out "$dir/scores/vox1_$t.score"
    local wall=()
    [ "$system_dir" != "$dir" ] || wall=(--extra "wall time (s)=$(system_seconds)")
    step python -m wesv.bin.compute_metrics --trials data/vox1/trials_$t --scores "$dir/scores/vox1_$t.score" \
      --det-png "$dir/eval/vox1_$t.png" --json "$dir/eval/vox1_$t.json" --system "$name (Vox1-$t)" \
      ${metrics_extra[@]+"${metrics_extra[@]}"} ${wall[@]+"${wall[@]}"}
  done
}
metrics_extra=()

# train_eval SYSTEM DIR CONFIG [TRAIN ARGS...]: what every system of the self-supervised stages goes through: train,
# extract VoxCeleb1 and VoxCeleb2-dev (the mean for scoring), evaluate Vox1-O/E/H; timed (system_begin).
train_eval() {
  local name=$1 dir=$2 config=$3
  shift 3
  [ "$system_dir" = "$dir" ] || system_begin "$dir"
  train "$config" "$dir" "$@"
  extract "$dir" vox1
  extract "$dir" vox2_dev
  evaluate "$name" "$dir"
}

if begin 1 "prepare VoxCeleb1 test + trials and VoxCeleb2-dev train data dirs" data/vox1 data/vox2_dev; then
  step python -m wesv.bin.prepare_voxceleb --vox1-dir "$vox1_dir" --out data/vox1
  step python -m wesv.bin.prepare_voxceleb --vox2-dir "$vox2_dir" --out data/vox2_dev
  finish
fi

if begin 2 "prepare MUSAN and RIRS_NOISES lists" data/musan data/rirs; then
  step python -m wesv.bin.prepare_musan --musan-dir "$musan_dir" --out data/musan
  step python -m wesv.bin.prepare_rirs --rirs-dir "$rirs_dir" --out data/rirs
  finish
fi

# Stages 3-5 build one system in three steps; --force true on stage 3 moves all of $exp/supervised aside (its
# embeddings and scores come from the model), so run stages 4 and 5 again with it (--stage 3 --stop_stage 5).
if begin 3 "train the supervised reference ($exp/supervised)" "$exp/supervised"; then
  train conf/supervised_ecapa1024.yaml "$exp/supervised"
  finish
fi

if begin 4 "extract embeddings ($nj jobs)" "$exp/supervised/emb/vox1" "$exp/supervised/emb/vox2_dev"; then
  extract "$exp/supervised" vox1
  extract "$exp/supervised" vox2_dev
  finish
fi

if begin 5 "score and evaluate Vox1-O/E/H" "$exp/supervised/scores" "$exp/supervised/eval"; then
  evaluate supervised "$exp/supervised"
  finish
fi

# ======================= Self-supervised stages (from 10) =======================
if begin 10 "DINO ($exp/dino, $dino_config)" "$exp/dino"; then
  train_eval DINO "$exp/dino" "$dino_config"
  finish
fi

if begin 11 "MoCo ($exp/moco, $moco_config)" "$exp/moco"; then
  train_eval MoCo "$exp/moco" "$moco_config"
  finish
fi

# The MoCo paper's claim: a supervised classifier initialised from MoCo beats the same one from random weights.
# Both runs share $supervised_ssl_config (only --init-from differs), so their rows in RESULTS.md compare directly.
if begin 12 "supervised ECAPA-512 from random weights and from MoCo ($exp/supervised_ecapa512{,_moco_init})" \
    "$exp/supervised_ecapa512" "$exp/supervised_ecapa512_moco_init"; then
  [ -f "$exp/moco/encoder.pt" ] || $dry_run || { log "no $exp/moco/encoder.pt: run stage 11 (MoCo) first"; exit 1; }
  train_eval "supervised ECAPA-512" "$exp/supervised_ecapa512" "$supervised_ssl_config"
  train_eval "supervised ECAPA-512 (MoCo init)" "$exp/supervised_ecapa512_moco_init" "$supervised_ssl_config" \
    --init-from "$exp/moco/encoder.pt"
  finish
fi

# cluster_metric REPORT KEY: the metric KEY (nmi, ami, ...) a cluster_report.json holds (4 decimals); "unknown" in
# a dry run.
cluster_metric() {
  if $dry_run; then echo unknown; return; fi
  python -c 'import json, sys
r = json.load(open(sys.argv[1]))
if sys.argv[2] not in r.get("metrics", {}):
    sys.exit(f"{sys.argv[1]}: no {sys.argv[2]} (clustered without --truth-utt2spk, or before it was measured): "
             "delete it to cluster again")
print(round(r["metrics"][sys.argv[2]], 4))' "$1" "$2"
}

# pseudo_round R PREV: round R of pseudo-labelling from the model in PREV. Cluster PREV's VoxCeleb2-dev embeddings
# into $exp/data/vox2_dev_{KIND}R (a data dir whose utt2spk holds cluster ids, beside the models it came from;
# $truth_utt2spk is read only to measure NMI / purity), train $round_config on it from PREV's encoder into
# $exp/{pseudo,dlg}_roundR, evaluate. Each step is skipped when its output exists and is not older than its input
# (training resumes), so a killed round goes on where it stopped. DLG-LC rounds (--dlg_lc true) also measure the
# loss-gate's precision against $truth_utt2spk when it is given (offline, wesv.bin.loss_gate_report).
pseudo_round() {
  local r=$1 prev=$2 dir=$exp/${round_kind}_round$1 labels=$exp/data/vox2_dev_${label_kind}round$1
  [ -f "$prev/encoder.pt" ] || $dry_run || { log "no $prev/encoder.pt: train it first (stage 10: DINO)"; exit 1; }
  log "$round_name round $r of $num_rounds: from $prev"
  system_begin "$dir"
  extract "$prev" vox2_dev
  local truth=()
  [ -z "$truth_utt2spk" ] || truth=(--truth-utt2spk "$truth_utt2spk")
  if up_to_date "$labels/cluster_report.json" "$prev/emb/vox2_dev/xvector.scp" "$labels"; then
    log "$labels/cluster_report.json is there; not clustering again"
  else
    step python -m wesv.bin.cluster --emb "$prev/emb/vox2_dev/xvector.scp" --data data/vox2_dev --out "$labels" \
      --algorithm kmeans_ahc --num-clusters "$num_clusters" --num-kmeans "$num_kmeans" ${truth[@]+"${truth[@]}"}
    produced_paths+=("$labels/cluster_report.json")
  fi
  [ -z "$truth_utt2spk" ] || metrics_extra=(--extra "AMI=$(cluster_metric "$labels/cluster_report.json" ami)"
                                              --extra "NMI=$(cluster_metric "$labels/cluster_report.json" nmi)")
  local from=()
  $round_init && from=(--init-from "$prev/encoder.pt")
  train_eval "$round_name round $r" "$dir" "$round_config" --data.train "$labels" ${from[@]+"${from[@]}"} \
    ${round_args[@]+"${round_args[@]}"}
  if $round_gate && [ -n "$truth_utt2spk" ]; then
    step python -m wesv.bin.loss_gate_report --exp-dir "$dir" --truth-utt2spk "$truth_utt2spk"
  fi
  metrics_extra=()
}

# pseudo_rounds: $num_rounds rounds from DINO of the kind set in round_* (then the AMI/NMI plot over rounds).
pseudo_rounds() {
  prev=${first_model:-$exp/dino}
  for r in $(seq 1 "$num_rounds"); do
    pseudo_round "$r" "$prev"
    prev=$exp/${round_kind}_round$r
  done
  if [ -n "$truth_utt2spk" ]; then
    reports=()
    for r in $(seq 1 "$num_rounds"); do reports+=("$exp/data/vox2_dev_${label_kind}round$r/cluster_report.json"); done
    step python -m wesv.bin.plot_rounds --reports "${reports[@]}" --out "$exp/${round_kind}_rounds.png"
  fi
}

round_init=true round_args=()
if $dlg_lc; then
  round_kind=dlg label_kind=dlg_ round_config=$dlg_config round_name=DLG-LC round_gate=true
else
  round_kind=pseudo label_kind="" round_config=$pseudo_config round_name=pseudo-labels round_gate=false
fi
if begin 13 "iterative $round_name from DINO: $num_rounds rounds of extract -> cluster -> train -> evaluate" \
    $(for r in $(seq 1 "$num_rounds"); do echo "$exp/${round_kind}_round$r $exp/data/vox2_dev_${label_kind}round$r"; done) \
    "$exp/${round_kind}_rounds.png"; then
  pseudo_rounds
  finish
fi

# Seed 000: WavLM Base+ (or any transformers speech SSL model in $ssl_model_dir) with the MHFA back-end.
use_ssl=$ssl_stages
if [ "$ssl_stages" = auto ]; then
  use_ssl=false
  if [ -f "$ssl_model_dir/config.json" ]; then
    use_ssl=true
  elif [ "$stop_stage" -ge 14 ] && [ "$stage" -le 15 ]; then
    log "no $ssl_model_dir/config.json: skipping the WavLM stages 14-15 (download WavLM Base+ as conf/wavlm_mhfa.yaml says, or pass --ssl_model_dir; --ssl_stages true makes this an error)"
  fi
fi
if $use_ssl && begin 14 "supervised WavLM + MHFA ($exp/wavlm_mhfa_supervised, $ssl_model_dir)" "$exp/wavlm_mhfa_supervised"; then
  [ -f "$ssl_model_dir/config.json" ] || $dry_run || { log "no $ssl_model_dir/config.json: download WavLM Base+ first (conf/wavlm_mhfa.yaml says how) or pass --ssl_model_dir"; exit 1; }
  train_eval "supervised WavLM Base+ MHFA" "$exp/wavlm_mhfa_supervised" "$mhfa_config" \
    --encoder.model_dir "$ssl_model_dir"
  finish
fi

round_kind=wavlm_mhfa label_kind=wavlm_ round_config=$mhfa_config round_name="WavLM MHFA DLG-LC" round_gate=true
round_init=false round_args=(--type dlg_lc --encoder.model_dir "$ssl_model_dir")
if $use_ssl && begin 15 "WavLM + MHFA pseudo-label rounds with DLG-LC from DINO, then large-margin fine-tuning" \
    $(for r in $(seq 1 "$num_rounds"); do echo "$exp/wavlm_mhfa_round$r $exp/data/vox2_dev_wavlm_round$r"; done) \
    "$exp/wavlm_mhfa_rounds.png" "$exp/wavlm_mhfa_lmft"; then
  pseudo_rounds
  train_eval "WavLM MHFA DLG-LC round $num_rounds + large-margin fine-tuning" "$exp/wavlm_mhfa_lmft" \
    "$mhfa_lmft_config" --data.train "$exp/data/vox2_dev_wavlm_round$num_rounds" \
    --init-from "$exp/wavlm_mhfa_round$num_rounds/encoder.pt" --encoder.model_dir "$ssl_model_dir"
  finish
fi

# C-DINO (seed 001): DINO continued with views from other utterances of the same cluster, then rounds from it.
if begin 16 "C-DINO from DINO ($cdino_mode clustering)" "$exp/cdino" "$exp/data/vox2_dev_cdino"; then
  system_begin "$exp/cdino"
  if [ "$cdino_mode" = fixed ]; then
    extract "$exp/dino" vox2_dev
    truth=()
    [ -z "$truth_utt2spk" ] || truth=(--truth-utt2spk "$truth_utt2spk")
    if ! up_to_date "$exp/data/vox2_dev_cdino/cluster_report.json" "$exp/dino/emb/vox2_dev/xvector.scp" \
        "$exp/data/vox2_dev_cdino"; then
      step python -m wesv.bin.cluster --emb "$exp/dino/emb/vox2_dev/xvector.scp" --data data/vox2_dev \
        --out "$exp/data/vox2_dev_cdino" --algorithm kmeans_ahc --num-clusters "$num_clusters" \
        --num-kmeans "$num_kmeans" ${truth[@]+"${truth[@]}"}
    fi
    cd_args=(--method.cluster_data "$exp/data/vox2_dev_cdino")
  else
    cd_args=(--method.cluster_data null --method.recluster_every 5 --method.recluster_num_clusters "$num_clusters")
  fi
  train_eval "C-DINO ($cdino_mode)" "$exp/cdino" "$cdino_config" --method.continue_from "$exp/dino" "${cd_args[@]}"
  [ -z "$truth_utt2spk" ] || step python -m wesv.bin.view_report --exp-dir "$exp/cdino" --truth-utt2spk "$truth_utt2spk"
  finish
fi

round_kind=cdino_pseudo label_kind=cdino_ round_config=$pseudo_config round_name="pseudo-labels from C-DINO"
round_gate=false round_init=true round_args=()
if $dlg_lc; then round_config=$dlg_config round_name="DLG-LC from C-DINO" round_gate=true; fi
if begin 17 "$round_name: $num_rounds rounds (seed 001's full system with --dlg_lc true)" \
    $(for r in $(seq 1 "$num_rounds"); do echo "$exp/cdino_pseudo_round$r $exp/data/vox2_dev_cdino_round$r"; done) \
    "$exp/cdino_pseudo_rounds.png"; then
  first_model=$exp/cdino pseudo_rounds
  finish
fi


if begin 20 "results table of every system ($exp/RESULTS.md)" "$exp/RESULTS.md"; then
  results=()
  for t in O E H; do  # grouped by trial list, systems in name order within each
    for f in "$exp"/*/eval/vox1_$t.json; do [ ! -f "$f" ] || results+=("$f"); done
  done
  if [ ${#results[@]} -eq 0 ]; then
    $dry_run || { log "no $exp/*/eval/vox1_{O,E,H}.json yet: run the training and evaluation stages first"; exit 1; }
    results=("$exp/*/eval/vox1_[OEH].json")
  fi
  step python -m wesv.bin.results_table --out "$exp/RESULTS.md" "${results[@]}"
  finish
fi

current_stage=""
log "finished stages $stage to $stop_stage"
