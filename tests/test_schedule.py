"Learning-rate schedules (`style_sched`, `content_sched`): planned over the epoch bound, continued by a run resumed mid-epoch."
import pytest
from fastai.callback.core import Callback
from fastai.callback.schedule import combined_cos

from animestyle.content import style_stub, train_content
from animestyle.core import RunDir, get_preset
from animestyle.data.loaders import prepare_data
from animestyle.style import fit_style

EPOCHS = 3  # two training steps an epoch at the tiny preset: six in all


class LRLog(Callback):
    "The learning rate and momentum of every training step."
    order = 98
    def __init__(self): self.lrs, self.moms = [], []
    def after_batch(self):
        if self.training: self.lrs.append(self.opt.hypers[0]['lr']); self.moms.append(self.opt.hypers[0]['mom'])


class Killed(Exception): pass


class KillAfter(Callback):
    "Stop the fit, as a kill would, after training step `n` (its step checkpoint is written)."
    order = 99
    def __init__(self, n): self.n, self.k = n, 0
    def after_batch(self):
        if self.training:
            self.k += 1
            if self.k == self.n: raise Killed('kill -9')


def style_fit(run, **kw): return fit_style(run, epochs=EPOCHS, patience=EPOCHS, ckpt_every=1, cache=prepare_data(run, workers=1), **kw)
def content_fit(run, **kw): return train_content(run, epochs=EPOCHS, style=style_stub(run.preset), ckpt_every=1, **kw)


def lrs(tmp_path, name, fit, preset, kill=None):
    "Learning rates and momenta of every step of `fit` on a new run; with `kill`, stopped after that step and resumed."
    run = RunDir(tmp_path/name, preset)
    prepare_data(run, workers=1)
    log = LRLog()
    if kill is not None:
        with pytest.raises(Killed): fit(run, cbs=[log, KillAfter(kill)])
    rest = LRLog()
    fit(run, cbs=[rest])
    return log.lrs + rest.lrs, log.moms + rest.moms


STAGES = dict(style=(style_fit, 'style_sched', 'style_lr'), content=(content_fit, 'content_sched', 'content_lr'))


@pytest.mark.parametrize('stage', STAGES)
def test_one_cycle_resumed_mid_epoch_continues_the_schedule(stage, tmp_path):
    "Killed after step 3 (mid-epoch 2) and resumed, the fit steps at the learning rates of the fit never stopped: fastai's one cycle over all epochs."
    fit, key, lr_key = STAGES[stage]
    p = get_preset('tiny', **{key: 'one_cycle'})
    ref, ref_moms = lrs(tmp_path, 'ref', fit, p)
    cut, cut_moms = lrs(tmp_path, 'cut', fit, p, kill=3)
    lr, n = getattr(p, lr_key), len(ref)
    assert n == 2*EPOCHS
    assert cut == pytest.approx(ref, rel=1e-9) and cut_moms == pytest.approx(ref_moms)
    assert ref == pytest.approx([combined_cos(0.25, lr/25, lr, lr/1e5)(i/n) for i in range(n)], rel=1e-6)  # one plan, not restarted
    if stage == 'style': assert ref_moms == pytest.approx([combined_cos(0.25, 0.95, 0.85, 0.95)(i/n) for i in range(n)])
    else: assert set(ref_moms) == {0}  # RMSprop has no momentum, and one cycle adds none


@pytest.mark.parametrize('stage', STAGES)
def test_constant_is_table_2s_rate(stage, tmp_path):
    "The default schedule steps at the preset's rate throughout, and leaves the momentum alone, as `learn.fit` always did."
    fit, key, lr_key = STAGES[stage]
    p = get_preset('tiny')
    assert getattr(p, key) == 'constant'
    got, moms = lrs(tmp_path, 'run', fit, p)
    assert got == [getattr(p, lr_key)]*2*EPOCHS and len(set(moms)) == 1


def test_flat_cos_is_planned_over_the_epoch_bound(tmp_path):
    p = get_preset('tiny', content_sched='flat_cos')
    got, _ = lrs(tmp_path, 'run', content_fit, p)
    lr, n = p.content_lr, 2*EPOCHS
    assert got == pytest.approx([combined_cos(0.75, lr, lr, lr/1e5)(i/n) for i in range(n)], rel=1e-6)
    assert got[:4] == pytest.approx([lr]*4) and got[-1] < lr  # flat for three quarters of the plan, then down
