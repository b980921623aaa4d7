#!/usr/bin/env bash
# Self-supervised config variants side by side on one GPU box: generate the corpus there, run bench/ssl_sweep.py
# on it with --parallel runs (each on the GPU, its loader on its own worker processes), and leave the table, the
# rows and the runs' logs in $OUT. Arguments after the options go to ssl_sweep.py (--variant ..., --seeds ...).
#
#   OUT=/tmp/out BUDGET=420 bash bench/device_sweep.sh --config egs/mini/conf/dino.yaml --variant base= --seeds 0 1
#
# Environment: OUT (where results go), BUDGET (seconds the sweep may run; the runs finished by then are
# tabulated), CORPUS_OPTS (make_corpus options, e.g. the claims profile's), PARALLEL (runs at once), WORKERS (loader
# workers per run), DEVICE (cuda, or cpu for a dry run here). Python packages missing on the box travel as wheels in
# .whl/ (see /work/.library/device/README.md in the development workplace) and are installed first when present.
set -uo pipefail
out=${OUT:?set OUT}
budget=${BUDGET:-420}
parallel=${PARALLEL:-7}
workers=${WORKERS:-2}
device=${DEVICE:-cuda}
corpus=${CORPUS:-/tmp/sweep_corpus}
runs=${RUNS:-/tmp/sweep_runs}
export PYTHONUNBUFFERED=1
wheels=${WHEELS:-.whl}
if [ -d "$wheels" ] && ls "$wheels"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$wheels"/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
echo "cores $(nproc); $(nvidia-smi -L 2>/dev/null || echo no GPU)"
start=$(date +%s)
if [ ! -f "$corpus/meta.json" ]; then
  # shellcheck disable=SC2086  # CORPUS_OPTS is a list of options
  python3 -m wesv.bin.make_corpus --out "$corpus" --seed 0 --num-workers "$(nproc)" ${CORPUS_OPTS:-} \
    >"$out/corpus.log" 2>&1 || { tail -5 "$out/corpus.log"; exit 1; }
fi
echo "corpus: $(( $(date +%s) - start )) s"
args=(--corpus "$corpus" --out "$runs" --parallel "$parallel" --workers "$workers" --threads 1 --device "$device" "$@")
timeout "$budget" python3 bench/ssl_sweep.py "${args[@]}"
echo "sweep exit $? after $(( $(date +%s) - start )) s"
python3 bench/ssl_sweep.py "${args[@]}" --report-only >/dev/null
cp "$runs/SWEEP.md" "$runs/sweep.json" "$out/" 2>/dev/null
(cd "$runs" && find . \( -name metrics.jsonl -o -name sweep.log -o -name cluster_report.json \) -print0 \
  | tar czf "$out/runs.tgz" --null -T -)
cat "$out/SWEEP.md" 2>/dev/null
