#!/usr/bin/env bash
# The GPU training check: one script, under 9 minutes on one H100 or H200 (wheels from benchmarks/gpu_wheels.sh in .whl/).
#   1. the Learners' CUDA path (core.accel_cbs: bf16, channels_last, DeviceLossLog) in a tiny style fit: checks the
#      dtype, the layout and that the Recorder's losses are finite and one per batch; then the notebooks' `#| cuda`
#      cells at the tiny preset (nbdev_test --flags cuda; IPython comes from the wheels);
#   2. timing, alone on the GPU, at the `paper` preset:
#      a. Learner vs plain loop per stage (benchmarks/loop_overhead.py); style and GAN again without DivergenceGuard
#         (GUARD=0); the style stage against a plain loop that reads its loss back every step (PLAIN_SYNC=1); the
#         style stage's two loops under torch.profiler (operator tables in $OUT/profile);
#      a'. each stage's loader against its training step (benchmarks/loader_speed.py), after the pinned copy;
#      b. the style Learner end to end on 3,200 synthetic 256 px images (benchmarks/gpu_learner.py);
#      c. the style stage's MFU in a plain loop at batch 32, 128 and 256, channels_last, eager and compiled
#         (benchmarks/gpu_bench.py);
#   3. an experiment at the `cpu` preset, runs side by side on the GPU (they share it; not timings): GAN fidelity
#      against epochs (benchmarks/gan_schedule.py, epochs $GAN_EPOCHS) at each λ_style in $LAMBDAS, from the style and
#      content encoders of a finished `cpu` run carried in $GPURUN (config.json, style/style.safetensors,
#      content/encoder.safetensors).
# Results go to $OUT (or benchmarks/out). Numbers are recorded in BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"; GPURUN=${GPURUN:-gpurun/cpu}; TMP=$(mktemp -d)
LAMBDAS=${LAMBDAS:-0.5}; GAN_EPOCHS=${GAN_EPOCHS:-24,40}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else export PYTHONPATH=$PWD; fi
LOG=$OUT/log.txt
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, fastai, kornia; print('torch', torch.__version__, 'fastai', fastai.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee -a "$LOG"
clean() { tr '\r' '\n' | sed -E 's/^.*█[^]]*\]//' | grep -a -v -e '█' -e 'shadowing an attribute' -e 'warn(' -e '^\s*$'; }
echo "== 1. the Learner on CUDA: bf16, channels_last, losses kept on the device" | tee -a "$LOG"
timeout 90 python3 - <<'PY' 2>&1 | clean | tee -a "$LOG"
import math, tempfile, torch
from pathlib import Path
from animestyle.core import DeviceLossLog, RunDir, get_preset
from animestyle.data.loaders import prepare_data
from animestyle.style import style_learner
run = RunDir(Path(tempfile.mkdtemp())/'run', get_preset('tiny'))
learn = style_learner(run, prepare_data(run, workers=4), device='cuda')
assert any(isinstance(c, DeviceLossLog) for c in learn.cbs), 'DeviceLossLog missing on CUDA'
seen = []; h = learn.model.encoder.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
learn.fit(1); h.remove()
w = next(q for q in learn.model.encoder.parameters() if q.ndim == 4)
cl = w.is_contiguous(memory_format=torch.channels_last)
losses = [float(l) for l in learn.recorder.losses]
print('style Learner on cuda: S output', seen[0], '| conv weights channels_last', cl, '| batches', len(learn.dls.train),
      '| losses recorded', len(losses), 'all finite', all(map(math.isfinite, losses)), '| values', learn.recorder.values[-1])
assert seen[0] == torch.bfloat16 and cl and len(losses) == len(learn.dls.train) and all(map(math.isfinite, losses))
PY
echo "== 1b. the notebooks' #| cuda cells at the tiny preset" | tee -a "$LOG"
ANIMESTYLE_PRESET=tiny timeout 150 python3 -c "import sys; from nbdev.test import nbdev_test; sys.argv[0] = 'nbdev-test'; nbdev_test()" --flags cuda \
  --file-re "$(grep -l '#| cuda' nbs/*.ipynb | xargs -n1 basename | paste -sd'|')" 2>&1 | clean | tail -6 | tee -a "$LOG"
T0=$SECONDS
echo "== 2a. Learner vs plain loop, paper preset, CUDA" | tee -a "$LOG"
timeout 150 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 3 \
  --json "$OUT/gpu_loop_overhead.json" 2>&1 | clean | tee -a "$LOG"
GUARD=0 timeout 90 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 3 \
  --stages style,gan --json "$OUT/gpu_loop_overhead_noguard.json" 2>&1 | clean | grep ' bs ' | tee -a "$LOG"
PLAIN_SYNC=1 timeout 60 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 \
  --repeats 3 --stages style --json "$OUT/gpu_loop_overhead_style_sync.json" 2>&1 | clean | tail -4 | tee -a "$LOG"
timeout 90 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 1 \
  --stages style --profile "$OUT/profile" 2>&1 | clean | grep -a ' bs ' | tee -a "$LOG"
echo "== 2a'. each stage's loader against its training step, paper preset, CUDA (target: loader >= 5x)" | tee -a "$LOG"
timeout 60 python3 benchmarks/loader_speed.py --device cuda --presets paper --steps 20 --repeats 3 \
  --json "$OUT/gpu_loader_speed.json" 2>&1 | clean | grep -a ' px ' | tee -a "$LOG"
echo "== 2b. style Learner end to end, paper preset, 3,200 images" | tee -a "$LOG"
timeout 100 python3 benchmarks/gpu_learner.py --preset paper --artists 32 --per-artist 100 --epochs 3 \
  --json "$OUT/gpu_style_learner.json" 2>&1 | clean | tail -3 | tee -a "$LOG"
echo "== 2c. style MFU, plain loop, paper preset, channels_last" | tee -a "$LOG"
timeout 60 python3 benchmarks/gpu_bench.py --preset paper --steps 15 --stages style --bs 32,128,256 --channels-last 1 \
  --json "$OUT/gpu_style_mfu.json" 2>&1 | clean | tee -a "$LOG"
timeout 100 python3 benchmarks/gpu_bench.py --preset paper --steps 15 --stages style --bs 128,256 --channels-last 1 --compile \
  --json "$OUT/gpu_style_mfu_compile.json" 2>&1 | clean | tee -a "$LOG"
echo "== 3. GAN fidelity against epochs at the cpu preset, λ_style in {$LAMBDAS} (concurrent) after $((SECONDS-T0))s" | tee -a "$LOG"
export OMP_NUM_THREADS=4
for l in $LAMBDAS; do
  timeout ${EXP_S:-160} python3 benchmarks/gan_schedule.py --run "$GPURUN" --epochs "$GAN_EPOCHS" --lambda-style $l --workers 4 \
    --json "$OUT/gan_schedule_lambda$l.json" > "$TMP/gan$l.log" 2>&1 &
done
wait
for l in $LAMBDAS; do echo "-- λ_style $l"; clean < "$TMP/gan$l.log" | grep -v -e '^\s*$' | tail -6; done | tee -a "$LOG"
for d in "$GPURUN"*; do s=$(ls -t "$d"/gan/samples/*.png 2>/dev/null | head -1); [ -n "$s" ] && cp "$s" "$OUT/samples_$(basename "$d").png"; done
echo "total ${SECONDS}s" | tee -a "$LOG"
