"""The data-parallel job of `test_distributed.py` and of notebook 11: the style encoder under `distributed_fit`.

Launched in each rank's process by `animestyle.distributed.launch`, with this folder on `sys.path`. It lives here, not
in the library, so `animestyle.distributed` never imports `animestyle.style` (which imports it).
"""
import time
from pathlib import Path

import numpy as np
import torch.distributed as dist
from fastai.callback.core import Callback
from fastai.callback.tracker import EarlyStoppingCallback

from animestyle.core import RunDir, barrier, get_preset, load_model, save_json, seed_everything
from animestyle.data.loaders import prepare_data
from animestyle.distributed import (WriteLog, distributed_fit, init_distributed, main_process_first, rank, rank0_only,
                                    state_hash, world_size)
from animestyle.style import StyleCheckpoint, style_learner


def style_demo(run_path, # the run folder (made at `preset` when missing)
               out, # where each rank writes rank<r>.json
               epochs:int=4, # epochs to fit
               preset:str='tiny', # the preset of a new run
               **overrides # preset values, e.g. style_bs=16
              ):
    "Train the style encoder of `run_path` under `distributed_fit` and write a report per rank: the job of these tests and of notebook 11."
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    init_distributed()
    with main_process_first():
        run = RunDir(run_path, get_preset(preset, **{k: int(v) if str(v).isdigit() else v for k, v in overrides.items()}))
        cache = prepare_data(run, workers=1)
    seed_everything(run.seed + rank())
    learn = style_learner(run, cache, device='cpu')
    class Report(Callback):
        order = 54  # after the recorder, before the checkpoint restores the best epoch
        def before_fit(self): self.batch_losses,self.shard,self.final = [],None,None
        def before_train(self): self.shard = getattr(self.dl, 'rows', None)
        def after_batch(self):
            if self.training: self.batch_losses.append(float(self.loss))
        def after_fit(self): self.final = state_hash(self.learn.model)
    rep = Report()
    monitor = f'acc@{run.preset.d_style}'
    best, last = run.stage('style')/'metric.safetensors', run.style/'metric.last.safetensors'
    cbs = [rep, EarlyStoppingCallback(monitor=monitor, comp=np.greater, min_delta=1e-3, patience=epochs),
           StyleCheckpoint(best, last, monitor)]  # on every rank: only the main process's writes are published
    with WriteLog(run.path/'style') as log:
        t = time.perf_counter()
        distributed_fit(learn, epochs, run.preset.style_lr, cbs=cbs)
        dt = time.perf_counter() - t
        barrier()  # rank 0 has written the best epoch
        load_model(learn.model, best)
        history = [[float(v) for v in row] for row in learn.recorder.values]
        rank0_only(save_json)(run.style/'metrics.json', dict(history=history, names=learn.recorder.metric_names[1:-1]))
        barrier()
    save_json(out/f'rank{rank()}.json', all_ranks=True, obj=dict(
        rank=rank(), world_size=world_size(), backend=dist.get_backend() if dist.is_initialized() else None,
        shard=None if rep.shard is None else rep.shard.tolist(), batch_losses=rep.batch_losses, epoch_history=history,
        final_hash=rep.final, best_hash=state_hash(learn.model), fit_s=dt, published=log.published))
