"""Data-parallel training on 2 CPU processes over gloo, started by torchrun and by accelerate launch.

The job (`style_demo` in `style_job.py` beside this file) trains the tiny preset's style encoder through its fastai `Learner`
under `distributed_fit`, with the ranks seeded differently, and each rank reports its shard of the cache, its
training losses, a hash of its weights and the files it published. Checked: the ranks read disjoint shards, the
loss falls, the weights agree at the end (so the gradients were exchanged: different seeds and different data
would otherwise give different weights), and only rank 0 wrote checkpoints and metrics.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from fastai.distributed import DistributedTrainer

from animestyle.core import RunDir, get_preset, seed_everything
from animestyle.data.loaders import prepare_data, style_dls
from animestyle.distributed import ShardedDL, launch, maybe_distrib, shard_rows, state_hash
from animestyle.style import style_learner


def _job(tmp_path, launcher, epochs):
    code = (f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom style_job import style_demo\n"
            f"style_demo({str(tmp_path/'run')!r}, {str(tmp_path/'out')!r}, epochs={epochs}, style_bs=16)\n")
    res = launch(code, nproc=2, launcher=launcher, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return [json.loads((tmp_path/'out'/f'rank{r}.json').read_text()) for r in (0, 1)]


def _check_ranks(reports, manifest):
    r0, r1 = reports
    assert [r['rank'] for r in reports] == [0, 1] and all(r['world_size'] == 2 for r in reports)
    assert all(r['backend'] == 'gloo' for r in reports)
    # each rank read its own half of the training split, and nothing else
    train = np.flatnonzero(manifest.split.values == 'train')
    assert not set(r0['shard']) & set(r1['shard'])
    assert sorted(r0['shard'] + r1['shard']) == sorted(train.tolist())
    # the ranks saw different images, yet end with the same weights: gradients were averaged
    assert r0['batch_losses'] != r1['batch_losses']
    assert r0['final_hash'] == r1['final_hash']
    assert r0['best_hash'] == r1['best_hash']
    # one process writes: the checkpoint and the metrics come from rank 0 alone
    assert {'metric.safetensors', 'metrics.json'} <= set(r0['published'])
    assert r1['published'] == []


def test_torchrun_two_cpu_processes(tmp_path):
    reports = _job(tmp_path, 'torchrun', epochs=5)
    cache = prepare_data(RunDir(tmp_path/'run', create=False), workers=1)
    _check_ranks(reports, cache.manifest)
    r0 = reports[0]
    # the loss falls: the epoch means (gathered over both ranks) and each rank's own batches
    hist = [h[0] for h in r0['epoch_history']]
    assert reports[1]['epoch_history'] == r0['epoch_history']  # every rank logged the same numbers
    assert hist[-1] < hist[0] - 0.05, hist
    for r in reports:
        b = r['batch_losses']; k = max(1, len(b) // 3)
        assert np.mean(b[-k:]) < np.mean(b[:k]), b
    # the weights written by rank 0 are those the ranks hold
    assert (tmp_path/'run'/'style'/'metric.safetensors').is_file()


def test_accelerate_launch_multi_gpu_flag_on_cpu(tmp_path):
    "`accelerate launch --multi_gpu` on a machine without GPUs still starts 2 processes over gloo."
    reports = _job(tmp_path, 'accelerate', epochs=1)
    cache = prepare_data(RunDir(tmp_path/'run', create=False), workers=1)
    _check_ranks(reports, cache.manifest)


def test_shards_partition_and_equal_steps(tmp_path):
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    cache = prepare_data(run, workers=1)
    trn = style_dls(cache, 8, device='cpu').train
    for world in (2, 3):
        dls = [ShardedDL(trn, rank=r, world_size=world, block=4) for r in range(world)]
        rows = [set(d.rows) for d in dls]
        assert set().union(*rows) == set(trn.dataset.idxs) and sum(map(len, rows)) == len(trn.dataset)
        assert len({len(d) for d in dls}) == 1 and len(dls[0]) >= 1  # same number of steps on every rank
        for d, own in zip(dls, rows):
            served = set()
            for x, y in d: assert x.shape[0] == 8
            for ii in np.array(d.get_idxs()).reshape(-1, 8): served |= set(d.dataset.idxs[ii].tolist())
            assert served <= own
            # every artist appears in every shard (blocks are dealt round robin)
            assert set(cache.manifest.artist_id.values[list(own)]) == set(cache.manifest.artist_id.values[trn.dataset.idxs])
    assert shard_rows(np.arange(10), 1, 2, block=2).tolist() == [2, 3, 6, 7]


def test_single_process_is_a_plain_fit(tmp_path):
    "Without a launcher, fitting under `maybe_distrib` adds nothing and trains exactly as a plain fit."
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    cache = prepare_data(run, workers=1)
    hashes = []
    for wrapped in (False, True):
        seed_everything(0); learn = style_learner(run, cache, device='cpu')
        seed_everything(1)
        if wrapped:
            with maybe_distrib(learn):
                assert not any(isinstance(cb, DistributedTrainer) for cb in learn.cbs)
                learn.fit(1)
        else: learn.fit(1)
        hashes.append(state_hash(learn.model))
    assert hashes[0] == hashes[1]


PIPELINE_JOB = '''
import json, sys
from pathlib import Path
import fastai.learner
from fastai.callback.core import Callback
from animestyle.core import save_json
from animestyle.distributed import WriteLog, rank, state_hash
from animestyle import cli
run, out = Path(sys.argv[1]), Path(sys.argv[2])
fits = []
class Report(Callback):
    "Every fit's shard, training losses and final weights (before any checkpoint is loaded back)."
    order = 54
    def before_fit(self): fits.append(dict(model=type(getattr(self.learn.model, 'module', self.learn.model)).__name__, shard=None, losses=[]))
    def before_train(self):
        rows = getattr(self.dl, 'rows', None)
        if rows is not None: fits[-1]['shard'] = sorted(map(int, rows))
    def after_batch(self):
        if self.training: fits[-1]['losses'].append(float(self.loss))
    def after_fit(self): fits[-1]['hash'] = state_hash(self.learn.model)
fastai.learner.defaults.callbacks = [*fastai.learner.defaults.callbacks, Report]
with WriteLog(run) as log: status = cli.main(['pipeline', '--preset', 'tiny', '--run', str(run)])
save_json(out/f'rank{rank()}.json', dict(status=status, fits=fits, published=log.published), all_ranks=True)
'''


def test_cli_pipeline_two_processes(tmp_path):
    "`torchrun ... animestyle pipeline`: every stage trains data-parallel, from shards, and only rank 0 writes."
    (tmp_path/'out').mkdir()
    res = launch(PIPELINE_JOB, nproc=2, args=(tmp_path/'run', tmp_path/'out'), timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    r0, r1 = [json.loads((tmp_path/'out'/f'rank{r}.json').read_text()) for r in (0, 1)]
    assert r0['status'] == r1['status'] == 0
    # the style stage fitted S and the classification baseline; the content, judge and GAN stages once each; on both ranks
    assert [f['model'] for f in r0['fits']] == [f['model'] for f in r1['fits']] == ['StyleModel', 'StyleModel', 'ContentVAE', 'Judge', 'CondGAN']
    for f0, f1 in zip(r0['fits'], r1['fits']):
        assert f0['shard'] and f1['shard'] and not set(f0['shard']) & set(f1['shard'])  # disjoint shards of the cache
        assert f0['losses'] != f1['losses']                                            # so different batches...
        assert f0['hash'] == f1['hash']                                                # ...yet the same weights
    # rank 0 published every stage's artefacts; rank 1 wrote nothing into the run
    assert {'config.json', 'style/style.safetensors', 'style/baseline.safetensors', 'style/metrics.json', 'style/figure1.png',
            'content/vae.safetensors', 'gan/weights.safetensors', 'gan/metrics.json', 'report/report.html'} <= set(r0['published'])
    assert [p for p in r1['published'] if not p.endswith('.lock')] == []  # (it takes the cache's lock to read it)
    assert not list((tmp_path/'run').rglob('*.tmp'))
