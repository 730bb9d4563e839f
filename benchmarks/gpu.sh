#!/usr/bin/env bash
# The prepared GPU check: one script, under 10 minutes on one H100 or H200.
#   1. installs what the GPU machine's PyTorch image lacks, from wheels carried in .whl/
#      (made here by benchmarks/gpu_wheels.sh; the machine has no network);
#   2. runs each stage's networks at the `paper` preset for a fixed number of steps and prints images/s,
#      peak GPU memory and MFU against the card's bf16 peak (benchmarks/gpu_bench.py), with and without
#      channels_last, at the paper's batch sizes and at a larger batch;
#   3. trains the style encoder through its fastai Learner at the paper preset for one short epoch;
#   4. runs the notebooks' `#| cuda` cells (nbdev-test --flags cuda) at the tiny preset.
# Results go to $OUT (or benchmarks/out). Numbers are recorded in BENCHMARKS.md.
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, fastai, kornia; print('torch', torch.__version__, 'fastai', fastai.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())" || exit 1
T0=$SECONDS
echo "== paper preset, the paper's batch sizes (Table 2), contiguous vs channels_last"
timeout 200 python3 benchmarks/gpu_bench.py --preset paper --steps 15 --channels-last 0,1 --json "$OUT/paper_table2_bs.json"
echo "== paper preset, batch 128, channels_last"
timeout 150 python3 benchmarks/gpu_bench.py --preset paper --steps 8 --bs 128 --channels-last 1 --json "$OUT/paper_bs128.json"
echo "== torch.compile, style stage"
timeout 120 python3 benchmarks/gpu_bench.py --preset paper --steps 15 --channels-last 1 --stages style --compile --json "$OUT/paper_style_compile.json"
echo "== style encoder through its fastai Learner, paper preset, small synthetic set"
timeout 150 python3 benchmarks/gpu_learner.py --json "$OUT/paper_style_learner.json"
echo "== notebooks' #| cuda cells at the tiny preset"
if ls .whl/nbdev-*.whl >/dev/null 2>&1 && grep -l '#| cuda' nbs/*.ipynb >/dev/null 2>&1; then
  ANIMESTYLE_PRESET=tiny timeout 150 python3 -c "import sys; from nbdev.test import nbdev_test; sys.argv[0] = 'nbdev-test'; nbdev_test()" --flags cuda --file-re "$(grep -l '#| cuda' nbs/*.ipynb | xargs -n1 basename | paste -sd'|')" 2>&1 | tail -20
else echo "no #| cuda cells"; fi
echo "total ${SECONDS}s (benchmarks $((SECONDS-T0))s)"
