#!/usr/bin/env bash
# A two-minute GPU check of DivergenceGuard's lazy mode (fused Adam on CUDA): a NaN at step 3 stops a fit naming step 3
# with the weights of step 2, then the Learner against the plain loop for the style and GAN stages at the `paper`
# preset, with the guard and (GAN) without it. Wheels from benchmarks/gpu_wheels.sh in .whl/. Results go to $OUT.
set -uo pipefail
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"; export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else export PYTHONPATH=$PWD; fi
clean() { tr '\r' '\n' | sed -E 's/^.*█[^]]*\]//' | grep -a -v -e '█' -e 'shadowing an attribute' -e 'warn(' -e '^\s*$'; }
LOG=$OUT/log.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
timeout 60 python3 - <<'PY' 2>&1 | clean | tee -a "$LOG"
import torch, torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.callback.core import Callback
from animestyle.core import DivergenceError, DivergenceGuard, opt_func
class Poison(Callback):
    order = -6
    def after_loss(self):
        if self.training and self.train_iter == 2: self.learn.loss = self.learn.loss_grad = self.loss*float('nan')
    def after_step(self):
        if self.train_iter == 1: self.w = [q.detach().clone() for q in self.model.parameters()]
x = torch.randn(64, 4); ds = list(zip(x, (x@torch.tensor([1., -2, .5, 3]))[:, None]))
dls = DataLoaders(DataLoader(ds, bs=8, shuffle=True, device='cuda'), DataLoader(ds[:16], bs=8, device='cuda'), device='cuda')
learn = Learner(dls, torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)), loss_func=F.mse_loss, opt_func=opt_func('adam'), lr=1e-2)
guard, poison = DivergenceGuard('toy'), Poison()
try: learn.fit(1, cbs=[poison, guard]); print('lazy guard on cuda: NOT stopped')
except DivergenceError as e:
    same = all(torch.equal(a, b) for a, b in zip(poison.w, learn.model.parameters()))
    print(f'lazy guard on cuda: lazy={guard._lazy}, optimiser fused={learn.opt.opt.defaults.get("fused")}, stopped: "{e}"; weights are step 2\'s: {same}')
PY
timeout 100 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 3 \
  --stages style,gan --json "$OUT/gpu_loop_overhead_lazy.json" 2>&1 | clean | grep -a -e ' bs ' -e '^preset' | tee -a "$LOG"
GUARD=0 timeout 70 python3 benchmarks/loop_overhead.py --device cuda --preset paper --n 2048 --steps 20 --warmup 5 --repeats 3 \
  --stages gan --json "$OUT/gpu_loop_overhead_gan_noguard.json" 2>&1 | clean | grep -a ' bs ' | tee -a "$LOG"
echo "total ${SECONDS}s" | tee -a "$LOG"
