#!/usr/bin/env bash
# Atlas quickstart: install, collect MT10 expert demos, train, evaluate, report.
#
#   ./quickstart.sh                 # everything, in the current python (or $VENV if set)
#   VENV=.venv ./quickstart.sh      # create/use a virtual environment first
#   EPISODES=10 EVAL_EPISODES=10 ./quickstart.sh    # a faster, rougher run
#   SKIP_INSTALL=1 TRAIN_ARGS="training.max_steps=20" ./quickstart.sh   # extra KEY=VALUE overrides (CI's smoke)
#   SEED=1 ./quickstart.sh          # another training seed (README: seeds 0, 1, 2 on one collection)
#   COLLECT_SEED=1 DATA=data/mt10_seed1.hdf5 ./quickstart.sh   # another collection (its own file)
#
# Output: data/mt10.hdf5, runs/quickstart/ (checkpoints, metrics, eval.json) and a success table with
# the scripted expert's own success rate beside each task.
set -euo pipefail
cd "$(dirname "$0")"

EPISODES=${EPISODES:-50}            # successful demos per task
EVAL_EPISODES=${EVAL_EPISODES:-50}  # evaluation episodes per task
WORKERS=${WORKERS:-$(python3 -c 'import os; print(max(1, min(8, (os.cpu_count() or 2))))')}
DATA=${DATA:-data/mt10.hdf5}
RUN=${RUN:-runs/quickstart}
CONFIG=${CONFIG:-atlas/configs/train_config.yaml}
TRAIN_ARGS=${TRAIN_ARGS:-}         # extra KEY=VALUE overrides for atlas train
SEED=${SEED:-0}                     # training seed (training.seed)
COLLECT_SEED=${COLLECT_SEED:-0}     # collection seed: which scripted-expert episodes are recorded
TASKS=reach-v3,push-v3,pick-place-v3,door-open-v3,drawer-open-v3,drawer-close-v3,button-press-topdown-v3,peg-insert-side-v3,window-open-v3,window-close-v3

if [[ -n "${VENV:-}" ]]; then
  [[ -d "$VENV" ]] || python3 -m venv "$VENV"
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
fi
PY=${PYTHON:-python}
export MUJOCO_GL=${MUJOCO_GL:-egl}   # headless rendering

START=$SECONDS
phase() { PHASES+="$1=$(( SECONDS - T0 ))s "; T0=$SECONDS; }
T0=$SECONDS; PHASES=""
echo "== 1/5 install"
if [[ -n "${SKIP_INSTALL:-}" ]]; then
  echo "(SKIP_INSTALL set: using the installed packages)"
elif ! $PY -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    $PY -m pip install torch                 # a CUDA build where there is a GPU
  else
    $PY -m pip install "torch==2.13.0"       # the CPU wheel (a plain `torch` would pull a CUDA build)
  fi
fi
[[ -n "${SKIP_INSTALL:-}" ]] || $PY -m pip install -e ".[sim,language]"

phase install
echo "== 2/5 collect MT10 expert demos ($EPISODES per task, $WORKERS workers) -> $DATA"
if [[ -f "$DATA" ]]; then
  echo "$DATA exists; delete it to collect again"
else
  mkdir -p "$(dirname "$DATA")"
  $PY -m atlas.cli collect metaworld --tasks "$TASKS" --episodes "$EPISODES" --out "$DATA" \
      --image-size 64 --cameras corner2 --seed "$COLLECT_SEED" --workers "$WORKERS"
fi

phase collect
echo "== 3/5 train -> $RUN"
# shellcheck disable=SC2086 - TRAIN_ARGS is a list of KEY=VALUE words
$PY -m atlas.cli train --config "$CONFIG" --output-dir "$RUN" --resume auto data.path="$DATA" training.seed="$SEED" $TRAIN_ARGS

phase train
echo "== 4/5 evaluate ($EVAL_EPISODES episodes per task)"
$PY -m atlas.cli eval --checkpoint "$RUN" --env metaworld --tasks "$TASKS" --episodes "$EVAL_EPISODES" \
    --workers "$WORKERS" --out "$RUN/eval.json"

phase evaluate
echo "== 5/5 report"
if $PY -c 'import atlas.report.commands' 2>/dev/null; then
  $PY -m atlas.cli report "$RUN" || echo "(atlas report failed; the evaluation above stands)"
else
  echo "(atlas report is not available in this version)"
fi

$PY - "$RUN/eval.json" "$DATA" <<'PYEOF'
import json, sys
from atlas.sim.collection import read_collection_summary
from atlas.sim.evaluate import format_table
summary = json.load(open(sys.argv[1]))
expert = {task: row["expert_success_rate"] for task, row in read_collection_summary(sys.argv[2]).items()}
print("\nQuickstart: policy success (Wilson 95% interval) beside the scripted expert's own success rate")
print(format_table(summary, reference=expert))
PYEOF
phase report
echo "Quickstart time per phase: $PHASES total=$(( SECONDS - START ))s" | tee "$RUN/quickstart_times.txt"
