#!/usr/bin/env bash
# The GPU training check: one script, under 9 minutes on one H100 or H200 (wheels from benchmarks/gpu_wheels.sh in .whl/).
#   1. the Learners' bf16 + channels_last path (core.accel_cbs) on CUDA: a tiny style fit checks the dtype and layout;
#   2. timing, alone on the GPU: Learner vs plain loop per stage at the `paper` preset (benchmarks/loop_overhead.py),
#      and the style Learner end to end on 3,200 synthetic 256 px images (benchmarks/gpu_learner.py);
#   3. experiments at the `cpu` preset, side by side on the GPU (they share it; not timings):
#      - style accuracy against images per artist (benchmarks/style_data_scaling.py: 100, 200, 300);
#      - GAN fidelity against epochs (benchmarks/gan_schedule.py: 4, 12, 24, 40), at λ_style 0.5 and 5, from the
#        style and content encoders of a finished `cpu` run carried in $GPURUN (config.json, style/style.safetensors,
#        content/encoder.safetensors).
# Results go to $OUT (or benchmarks/out). Numbers are recorded in BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"; GPURUN=${GPURUN:-gpurun/cpu}; TMP=$(mktemp -d)
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else export PYTHONPATH=$PWD; fi
LOG=$OUT/log.txt
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, fastai, kornia; print('torch', torch.__version__, 'fastai', fastai.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee -a "$LOG"
clean() { grep -v -e '█' -e 'shadowing an attribute' -e 'warn(' ; }
echo "== 1. the Learner on CUDA: bf16 and channels_last" | tee -a "$LOG"
timeout 90 python3 - <<'PY' 2>&1 | clean | tee -a "$LOG"
import tempfile, torch
from pathlib import Path
from animestyle.core import RunDir, get_preset
from animestyle.data.loaders import prepare_data
from animestyle.style import style_learner
run = RunDir(Path(tempfile.mkdtemp())/'run', get_preset('tiny'))
learn = style_learner(run, prepare_data(run, workers=4), device='cuda')
seen = []; h = learn.model.encoder.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
learn.fit(1); h.remove()
w = next(q for q in learn.model.encoder.parameters() if q.ndim == 4)
cl = w.is_contiguous(memory_format=torch.channels_last)
print('style Learner on cuda: S output', seen[0], '| conv weights channels_last', cl, '| losses', learn.recorder.values[-1])
assert seen[0] == torch.bfloat16 and cl
PY
T0=$SECONDS
echo "== 2a. Learner vs plain loop, paper preset, CUDA" | tee -a "$LOG"
timeout 150 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 3 \
  --json "$OUT/gpu_loop_overhead.json" 2>&1 | clean | tee -a "$LOG"
echo "== 2b. style Learner end to end, paper preset, 3,200 images" | tee -a "$LOG"
timeout 120 python3 benchmarks/gpu_learner.py --preset paper --artists 32 --per-artist 100 --epochs 3 \
  --json "$OUT/gpu_style_learner.json" 2>&1 | clean | tail -3 | tee -a "$LOG"
echo "== 3. experiments at the cpu preset (concurrent) after $((SECONDS-T0))s" | tee -a "$LOG"
export OMP_NUM_THREADS=3
for n in 100 200 300; do
  timeout ${EXP_S:-300} python3 benchmarks/style_data_scaling.py --per-artist $n --workers 3 --root "$TMP/s$n" --json "$TMP/style_$n.json" > "$TMP/style_$n.log" 2>&1 &
done
timeout ${EXP_S:-300} python3 benchmarks/gan_schedule.py --run "$GPURUN" --epochs 4,12,24,40 --workers 3 --json "$OUT/gan_schedule.json" > "$TMP/gan.log" 2>&1 &
timeout ${EXP_S:-300} python3 benchmarks/gan_schedule.py --run "$GPURUN" --epochs 4,12,24,40 --lambda-style 5 --workers 3 --json "$OUT/gan_schedule_lambda5.json" > "$TMP/gan5.log" 2>&1 &
wait
for f in "$TMP"/style_*.log "$TMP"/gan.log "$TMP"/gan5.log; do echo "-- $(basename $f)"; clean < "$f" | grep -v -e '^\s*$' | tail -8; done | tee -a "$LOG"
python3 -c "
import json, glob, sys
runs = [r for f in sorted(glob.glob('$TMP/style_*.json')) for r in json.load(open(f))['runs']]
json.dump(dict(preset='cpu', device='cuda', runs=sorted(runs, key=lambda r: r['per_artist'])), open('$OUT/style_data_scaling.json', 'w'), indent=1)"
s=$(ls -t "$GPURUN"/gan/samples/*.png 2>/dev/null | head -1); [ -n "$s" ] && cp "$s" "$OUT/gan_samples_last.png"
echo "total ${SECONDS}s" | tee -a "$LOG"
