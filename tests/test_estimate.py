"The job's estimate on the pipeline's first line: images x epochs x GFLOP per image, GFLOP as the training steps count them."
import numpy as np
import pytest
import torch
from fastai.callback.core import Callback, CancelFitException

import animestyle.cli as cli
from animestyle.content import content_learner, style_stub
from animestyle.core import FLOP_LOG, RunDir, get_preset, save_checkpoint, save_json
from animestyle.data.loaders import all_dls, prepare_data
from animestyle.gan import CondGAN, ContentCondition, StyleCondition, build_critic, build_generator
from animestyle.gan_train import gan_learner
from animestyle.data.loaders import real_batches
from animestyle.layers import ContentEncoder
from animestyle.style import StyleCode, style_learner

COLLECTION = cli.Path(__file__).resolve().parent/'fixtures'/'collection'
# distinct epoch bounds, so that a stage multiplied by another's is caught; no R1, so FlopMeter's two steps are the mean
P = get_preset('tiny', style_epochs=3, content_epochs=4, judge_epochs=5, gan_epochs=6, gan_r1=0.)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    r = RunDir(tmp_path_factory.mktemp('est')/'run', P)
    return r, prepare_data(r, workers=1)


class StopAfter(Callback):
    order = 100
    def __init__(self, n=2): self.n, self.k = n, 0
    def after_step(self):
        self.k += 1
        if self.k >= self.n: raise CancelFitException()


def metered(learn):
    "GFLOP per image of the first training steps, as the Learner's own `FlopMeter` counts them."
    FLOP_LOG.clear()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[StopAfter()])
    return FLOP_LOG[-1]['gflop_per_image']


def test_each_training_is_its_images_times_its_epochs_times_its_counted_gflop(run):
    r, cache = run
    est = cli.job_estimate(r, cache.manifest, rate=100.)
    rows = {x['training']: x for x in est['rows']}
    n_train, n_all = int((cache.manifest.split == 'train').sum()), len(cache)
    assert n_train < n_all
    conds = StyleCondition(StyleCode(P, len(cache.artists))), ContentCondition(ContentEncoder(P), P.d_content)
    gan = CondGAN.from_preset(build_generator(P), build_critic(P), *conds, P)
    gan.cache_conditions(real_batches(cache, np.arange(len(cache)), 'cpu'))  # as `train_gan` does: D's step looks the real codes up
    counted = dict(style=metered(style_learner(r, cache, 'centres', device='cpu')),
                   baseline=metered(style_learner(r, cache, 'softmax', device='cpu')),
                   content=metered(content_learner(r, cache, style_stub(P), device='cpu')),
                   gan=metered(gan_learner(all_dls(cache, P.gan_bs, device='cpu', with_rows=gan.conditional), gan, P)))
    jbs = max(1, min(64, n_train//8))
    want = dict(style=(n_train//P.style_bs*P.style_bs, 3), baseline=(n_train//P.style_bs*P.style_bs, 3),
                content=(n_train//P.content_bs*P.content_bs, 4), judge=(n_train//jbs*jbs, 5), gan=(n_all//P.gan_bs*P.gan_bs, 6))
    for k, (images, epochs) in want.items():
        x = rows[k]
        assert (x['images'], x['epochs']) == (images, epochs), k
        g = counted.get(k, x['gflop_per_image'])
        assert x['gflop_per_image'] == pytest.approx(g, rel=1e-6), k  # what the stage's training step costs
        assert x['tflop'] == pytest.approx(images*epochs*g/1e3, rel=1e-9), k
    by = est['tflop_by_stage']
    assert by['style'] == pytest.approx(rows['style']['tflop'] + rows['baseline']['tflop'])
    assert est['tflop'] == pytest.approx(sum(x['tflop'] for x in rows.values()))
    sec = sum(x['tflop']*1e3/(100.*cli.CPU_EFFICIENCY[x['stage']]) for x in rows.values())
    assert est['minutes'] == pytest.approx(sec/60)
    no_baseline = cli.job_estimate(r, cache.manifest, skip_baseline=True, rate=100.)
    assert 'baseline' not in {x['training'] for x in no_baseline['rows']}
    assert no_baseline['tflop_by_stage']['style'] == pytest.approx(rows['style']['tflop'])


def test_trained_epochs_are_left_out(run, tmp_path):
    r0, cache = run
    r = RunDir(tmp_path/'run', P)
    one = {'w': torch.zeros(1)}
    save_checkpoint(r.stage('style')/'metric.safetensors', one, dict(finished=True))          # finished (early stopping)
    save_checkpoint(r.style/'baseline.last.safetensors', one, dict(epoch=0))                # one epoch of three done
    save_checkpoint(r.stage('content')/'vae.safetensors', one, dict(epochs_done=4))
    save_checkpoint(r.stage('judge')/'weights.safetensors', one, {}); save_json(r.judge/'metrics.json', {})
    save_checkpoint(r.stage('gan')/'checkpoint.safetensors', one, dict(epoch=2))            # two epochs of six done
    assert cli.epochs_left(r) == dict(style=0, baseline=2, content=0, judge=0, gan=4)
    est = cli.job_estimate(r, cache.manifest, rate=100.)
    assert est['done'] == ['content', 'judge']
    line = cli.estimate_line(est)
    assert 'content, judge already trained' in line and 'content 0' not in line
    assert est['tflop_by_stage']['gan'] == pytest.approx(cli.job_estimate(r0, cache.manifest, rate=100.)['tflop_by_stage']['gan']*4/6)


def stages_logged(monkeypatch, real=('prepare',)):
    "`run_stage` that only says which stage starts, except for the stages in `real`."
    orig = cli.run_stage
    def fake(name, r, *a, **k):
        print(f"[{name}] starts")
        if name in real: return orig(name, r, *a, **k)
    monkeypatch.setattr(cli, 'run_stage', fake)


def test_the_estimate_is_the_pipelines_first_line(tmp_path, monkeypatch, capsys):
    stages_logged(monkeypatch, real=())
    cli.pipeline('tiny', str(tmp_path/'run'))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('[pipeline] ') and ' on this machine: ' in out[0] and 'TFLOP (style ' in out[0]
    assert out[1] == '[prepare] starts'


def test_a_collection_not_prepared_yet_is_estimated_before_the_first_training(tmp_path, monkeypatch, capsys):
    stages_logged(monkeypatch)
    cli.pipeline('tiny', str(tmp_path/'run'), data=str(COLLECTION), already_cropped=True)
    out = capsys.readouterr().out.splitlines()
    first = next(i for i, l in enumerate(out) if l.startswith('[pipeline] '))
    assert out.index('[prepare] starts') < first and out[first+1] == '[style] starts'


def test_after_the_style_stage_the_rest_is_estimated_again_at_the_speed_it_reached(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, 'matmul_rate', lambda *a, **k: 100.)  # a machine whose matmul runs at 100 GFLOP/s
    assumed = 100. * cli.CPU_EFFICIENCY['style']
    def fake(name, r, *a, **k):
        print(f"[{name}] starts")
        if name == 'style': cli.STAGE_COST['style'] = dict(seconds=20., tflop=assumed / 2 * 20. / 1e3)  # half the assumed speed
    monkeypatch.setattr(cli, 'run_stage', fake)
    cli.pipeline('tiny', str(tmp_path/'run'))
    out = capsys.readouterr().out.splitlines()
    i = out.index('[style] starts')
    assert out[i+1].startswith('[pipeline] ') and ' left for ' in out[i+1], out
    assert f'style ran at {assumed/2:.0f} GFLOP/s, 0.5 x the {assumed:.0f} the estimate assumed' in out[i+1]
    assert sum(l.startswith('[pipeline] ') for l in out) == 2  # the first line and this one: content measured nothing here
