"""Reliability at the tiny preset: `kill -9` mid-epoch and resume for each stage and the pipeline, NaN/inf guards,
the GAN collapse warning, determinism, and the table of every kind of bad input the test suite tries.

The kill tests run the real command in a subprocess. A small wrapper holds it still (sleeping) just after a
chosen training step, so that `kill -9` lands at a known point instead of a random one; everything else is the
`animestyle` command as users run it. Steps lost and metric differences go to `tests/artifacts/kill_resume.json`."""
import ast, json, math, os, re, shutil, signal, subprocess, sys, time, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import animestyle.content as content_mod
import animestyle.gan as gan_mod
import animestyle.gan_train as train_mod
import animestyle.style as style_mod
from animestyle.content import style_stub, train_content
from animestyle.core import RunDir, get_preset, load_checkpoint, seed_everything
from animestyle.training import DivergenceError
from animestyle.data.loaders import prepare_data
from animestyle.gan import ContentCondition, StyleCondition
from animestyle.gan_train import train_gan
from animestyle.style import StyleCode
from animestyle.layers import ContentEncoder, StyleEncoder
from animestyle.style import fit_style

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/'tests'/'artifacts'
P = get_preset('tiny')
CLI = str(Path(sys.executable).parent/'animestyle')
ENV = {**os.environ, 'ANIMESTYLE_PRESET': 'tiny'}
WAIT_S = 1200  # the machine may be shared: generous limits, never hit on an idle one


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "A tiny run with its image cache built and nothing trained."
    run = RunDir(tmp_path_factory.mktemp('rel')/'base', P)
    prepare_data(run, workers=1)
    return run


def copy_run(run, dest, stages=('data',)):
    "A copy of `run`'s configuration and `stages` in a new folder."
    dest = Path(dest); dest.mkdir(parents=True)
    shutil.copy(run.path/'config.json', dest/'config.json')
    for s in stages: shutil.copytree(run.path/s, dest/s)
    return RunDir(dest)


def weights(path):
    t, meta = load_checkpoint(path)
    return {k: v for k, v in t.items() if not k.startswith(('loop.', 'rng.'))}, meta


def max_diff(a, b):
    "Largest absolute difference between two nests of numbers, lists, dicts and tensors (inf where they differ in kind)."
    if isinstance(a, dict):
        if set(a) != set(b): return math.inf
        return max([max_diff(a[k], b[k]) for k in a], default=0.)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b): return math.inf
        return max([max_diff(x, y) for x, y in zip(a, b)], default=0.)
    if isinstance(a, torch.Tensor):
        if a.shape != b.shape: return math.inf
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b): return 0.
        return abs(a - b)
    return 0. if a == b else math.inf


# --- divergence ---------------------------------------------------------------------------------------------------

def poison(monkeypatch, owner, name, at, value=float('nan')):
    "Make the `at`-th training call (with gradients on) of `owner.name` return its result times `value`."
    orig, seen = getattr(owner, name), [0]
    def bad(*a, **k):
        out = orig(*a, **k)
        if torch.is_grad_enabled():
            seen[0] += 1
            if seen[0] == at: return out * value
        return out
    monkeypatch.setattr(owner, name, bad)
    return seen


def finite(tensors): return all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def test_style_nan_stops_at_the_step_and_keeps_the_last_good_checkpoint(base, tmp_path, monkeypatch):
    run = copy_run(base, tmp_path/'r')
    poison(monkeypatch, style_mod.StyleModel, 'loss', 3)
    with pytest.raises(DivergenceError) as e: fit_style(run, ckpt_every=1, cache=prepare_data(run, workers=1))
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith('style: the loss is nan at step 3 (epoch 2, batch 1); stopped'), msg
    assert 'metric.last.safetensors' in msg and '--skip-bad-batches' in msg
    t, meta = weights(run.style/'metric.last.safetensors')
    assert meta['loop']['step'] == 2 and meta['epoch'] == 0 and finite(t)   # step 2's checkpoint: nothing after it
    assert not load_checkpoint(run.style/'metric.safetensors')[1]['finished']


def test_style_skip_bad_batches_finishes(base, tmp_path, monkeypatch):
    run = copy_run(base, tmp_path/'r')
    poison(monkeypatch, style_mod.StyleModel, 'loss', 3, float('inf'))
    with pytest.warns(UserWarning, match=r'style: skipped the batch at step 3 \(epoch 2, batch 1\): the loss is inf'):
        model, hist = fit_style(run, ckpt_every=1, skip_bad_batches=True, cache=prepare_data(run, workers=1))
    assert len(hist) == 2 and all(math.isfinite(v) for h in hist for v in h.values())
    assert finite(model.state_dict())


def test_content_nan_stops_at_the_step(base, tmp_path, monkeypatch):
    run = copy_run(base, tmp_path/'r')
    poison(monkeypatch, content_mod.ContentVAELoss, '__call__', 2)
    seed_everything(0)
    with pytest.raises(DivergenceError, match=r'^content: the loss is nan at step 2 \(epoch 1, batch 2\)'):
        train_content(run, epochs=2, style=style_stub(P), ckpt_every=1)
    t, meta = weights(run.content/'checkpoint.safetensors')
    assert meta['loop']['step'] == 1 and meta['loop']['iter'] == 1 and finite(t)
    assert not (run.content/'vae.safetensors').exists()


def stub_conditions(monkeypatch):
    "Untrained, frozen stand-ins for S and Enc, so that the GAN tests need no upstream stage."
    seed_everything(0)
    conds = (StyleCondition(StyleCode(P, P.synth_artists)), ContentCondition(ContentEncoder(P), P.d_content), None)
    monkeypatch.setattr(train_mod, 'require_upstream', lambda run: None)
    monkeypatch.setattr(train_mod, 'gan_conditions', lambda run, device=None: conds)


@pytest.mark.parametrize('fn,at,step,says', [('d_loss', 2, 3, r'^gan: the discriminator \(D\) loss is nan at step 3 \(epoch 1, batch 3\)'),
                                              ('g_adv_loss', 1, 2, r'^gan: the generator \(G\) loss is nan at step 2 \(epoch 1, batch 2\)')],
                         ids=['D', 'G'])
def test_gan_nan_in_either_loss_stops_at_the_step(base, tmp_path, monkeypatch, fn, at, step, says):
    "D and G steps alternate (D first): the 2nd D loss is step 3, the 1st G loss step 2."
    stub_conditions(monkeypatch)
    run = copy_run(base, tmp_path/'r')
    poison(monkeypatch, gan_mod, fn, at)
    with pytest.raises(DivergenceError, match=says):
        train_gan(run, epochs=1, bs=48, evaluate=False, device='cpu', ckpt_every=1)
    t, meta = weights(run.gan/'checkpoint.safetensors')
    assert meta['loop']['step'] == step-1 and finite(t)
    assert not (run.gan/'weights.safetensors').exists()


def test_gan_skips_a_bad_d_batch(base, tmp_path, monkeypatch):
    stub_conditions(monkeypatch)
    run = copy_run(base, tmp_path/'r')
    poison(monkeypatch, gan_mod, 'd_loss', 1)
    with pytest.warns(UserWarning, match=r'gan: skipped the batch at step 1 .*discriminator \(D\) loss is nan'):
        out = train_gan(run, epochs=1, bs=48, evaluate=False, device='cpu', skip_bad_batches=True)
    assert out.epoch == 1 and finite(out.G.state_dict()) and finite(out.D.state_dict())
    assert math.isfinite(load_checkpoint(run.gan/'weights.safetensors')[1]['epoch'])


def test_cli_divergence_is_one_line_and_status_3(base, tmp_path):
    run = copy_run(base, tmp_path/'r')
    code = ("import sys, warnings; warnings.simplefilter('ignore', FutureWarning)  # this wrapper imports the stage early\n"
            "import animestyle.style as s\n"
            "orig = s.StyleModel.loss\n"
            "s.StyleModel.loss = lambda self, z, y: orig(self, z, y)*float('nan')\n"
            "from animestyle.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, '-c', code, 'train-style', '--run', str(run.path)], capture_output=True, text=True,
                       env=ENV, timeout=WAIT_S)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith('animestyle: error: style: the loss is nan at step 1 (epoch 1, batch 1)')
    assert len(r.stderr.splitlines()) == 1 and 'Traceback' not in r.stderr + r.stdout
    assert not (run.style/'metric.last.safetensors').exists() and not (run.style/'style.safetensors').exists()


def test_gan_collapse_is_a_warning_in_metrics(base, tmp_path, monkeypatch):
    "Forced: D's loss scaled to near zero. After K=2 such epochs in a row, metrics.json carries the warning."
    stub_conditions(monkeypatch)
    run = copy_run(base, tmp_path/'r')
    orig = gan_mod.d_loss
    monkeypatch.setattr(gan_mod, 'd_loss', lambda r, f: orig(r, f)*1e-4)
    with pytest.warns(UserWarning, match='discriminator loss has been below 0.05 for 2 epochs'):
        out = train_gan(run, epochs=2, bs=48, device='cpu', collapse_epochs=2)
    m = json.loads((run.gan/'metrics.json').read_text())
    assert m['warnings'] == [m['history'][1]['warning']] and m['warnings'][0].startswith('epoch 2: the discriminator loss')
    assert 'warning' not in m['history'][0]                  # one epoch near zero is not yet K in a row
    assert all(h['d_loss'] < 0.05 for h in m['history']) and out.metrics['warnings'] == m['warnings']


# --- determinism --------------------------------------------------------------------------------------------------

def test_same_seed_same_style_metrics(base, tmp_path):
    runs = []
    for i in range(2):
        run = copy_run(base, tmp_path/f'r{i}')
        _, hist = fit_style(run, ckpt_every=0, cache=prepare_data(run, workers=1))
        runs.append((hist, weights(run.style/'metric.safetensors')[0]))
    (h0, w0), (h1, w1) = runs
    assert h0 == h1 and len(h0) == P.style_epochs
    assert all(torch.equal(w0[k], w1[k]) for k in w0)


def test_same_seed_same_content_metrics(base, tmp_path):
    seed_everything(0); stub = style_stub(P)
    out = []
    for i in range(2):
        run = copy_run(base, tmp_path/f'r{i}')
        train_content(run, epochs=2, style=stub, ckpt_every=0)
        out.append(weights(run.content/'vae.safetensors'))
    (w0, m0), (w1, m1) = out
    assert m0['history'] == m1['history'] and all(torch.equal(w0[k], w1[k]) for k in w0)


def test_same_seed_same_gan_metrics(base, tmp_path, monkeypatch):
    stub_conditions(monkeypatch)
    out = []
    for i in range(2):
        run = copy_run(base, tmp_path/f'r{i}')
        train_gan(run, epochs=1, bs=48, evaluate=False, device='cpu', ckpt_every=0)
        out.append(weights(run.gan/'weights.safetensors') + (load_checkpoint(run.gan/'checkpoint.safetensors')[1]['history'],))
    (w0, _, h0), (w1, _, h1) = out
    for h in (h0, h1):
        for r in h: r.pop('time', None); r.pop('minutes', None)  # wall clock
    assert h0 == h1 and all(torch.equal(w0[k], w1[k]) for k in w0)


# --- kill -9 and resume -------------------------------------------------------------------------------------------

HANG = """
import os, sys, time
import animestyle.training as core
stage, after, mark = os.environ['HANG_STAGE'], int(os.environ['HANG_AFTER']), os.environ['HANG_MARK']
orig = core.StepResume.before_batch
def before_batch(self):
    orig(self)
    if self.training and self.stage == stage and self.step == after:   # step `after` is done, the next one loaded
        open(mark, 'w').write(str(self.step)); time.sleep(3600)
core.StepResume.before_batch = before_batch
from animestyle.cli import main
sys.exit(main(sys.argv[1:]))
"""

RESULTS = {}


def record(stage, **kw):
    RESULTS[stage] = kw
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    f = ARTIFACTS/'kill_resume.json'
    old = json.loads(f.read_text()) if f.is_file() else {}
    f.write_text(json.dumps({**old, **RESULTS}, indent=2))


def kill_after(args, stage, after, folder):
    "Run `animestyle *args`, `kill -9` it once `stage` has done `after` training steps; return its output."
    mark, log = Path(folder)/'hang.mark', Path(folder)/'killed.log'
    env = {**ENV, 'HANG_STAGE': stage, 'HANG_AFTER': str(after), 'HANG_MARK': str(mark)}
    with open(log, 'w') as out:
        p = subprocess.Popen([sys.executable, '-c', HANG, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        start = time.time()
        while not mark.exists():
            if p.poll() is not None: pytest.fail(f"{args} ended ({p.returncode}) before step {after}:\n{log.read_text()[-3000:]}")
            if time.time()-start > WAIT_S: p.kill(); pytest.fail(f"{args} did not reach step {after} in {WAIT_S}s")
            time.sleep(0.1)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    return log.read_text()


def rerun(args):
    r = subprocess.run([CLI, *args], capture_output=True, text=True, env=ENV, timeout=WAIT_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def resumed_at(stage, out):
    m = re.search(rf'\[{stage}\] resuming at step (\d+)', out)
    assert m, f'{stage} did not resume:\n{out[-2000:]}'
    return int(m.group(1))


@pytest.fixture(scope='module')
def ref(base, tmp_path_factory):
    "The uninterrupted reference: `animestyle train-gan` (prepare, style, content, GAN) with the same seed."
    run = copy_run(base, tmp_path_factory.mktemp('ref')/'run')
    rerun(['train-gan', '--run', str(run.path), '--ckpt-every', '0'])
    return run


def test_kill_style_mid_epoch_then_resume(base, ref, tmp_path):
    run = copy_run(base, tmp_path/'run')
    args = ['train-style', '--run', str(run.path), '--ckpt-every', '1']
    kill_after(args, 'style', 3, tmp_path)                 # step 4 (epoch 2, batch 2) was in flight
    _, meta = load_checkpoint(run.style/'metric.last.safetensors')   # whole after kill -9
    assert (meta['loop']['epoch'], meta['loop']['iter'], meta['loop']['step']) == (1, 1, 3)   # mid-epoch 2
    at = resumed_at('style', rerun(args))
    (w, m), (rw, rm) = weights(run.style/'metric.safetensors'), weights(ref.style/'metric.safetensors')
    code, rcode = weights(run.style/'style.safetensors')[0], weights(ref.style/'style.safetensors')[0]
    d_hist, d_w = max_diff(m['history'], rm['history']), max(max_diff(w, rw), max_diff(code, rcode))
    record('style', command='train-style --ckpt-every 1', killed_after_step=3, in_flight_step=4, total_steps=4,
           resumed_at_step=at, steps_lost=3-at, max_metric_diff=d_hist, max_weight_diff=d_w, history=m['history'])
    assert at == 3 > 0 and not (run.style/'metric.last.safetensors').exists()
    assert len(m['history']) == len(rm['history']) == P.style_epochs
    assert d_hist <= 1e-6 and d_w <= 1e-6


def test_kill_content_mid_epoch_then_resume(ref, tmp_path):
    run = copy_run(ref, tmp_path/'run', ('data', 'style'))
    args = ['train-content', '--run', str(run.path), '--ckpt-every', '1']
    kill_after(args, 'content', 3, tmp_path)
    _, meta = load_checkpoint(run.content/'checkpoint.safetensors')
    assert (meta['loop']['epoch'], meta['loop']['iter'], meta['loop']['step']) == (1, 1, 3)
    at = resumed_at('content', rerun(args))
    (w, m), (rw, rm) = weights(run.content/'vae.safetensors'), weights(ref.content/'vae.safetensors')
    d_hist, d_w = max_diff(m['history'], rm['history']), max_diff(w, rw)
    record('content', command='train-content --ckpt-every 1', killed_after_step=3, in_flight_step=4, total_steps=4,
           resumed_at_step=at, steps_lost=3-at, max_metric_diff=d_hist, max_weight_diff=d_w, history=m['history'])
    assert at == 3 and len(m['history']) == P.content_epochs
    assert d_hist <= 1e-6 and d_w <= 1e-6


def test_kill_pipeline_during_gan_then_rerun(ref, tmp_path):
    "The whole pipeline, killed in epoch 2 of the GAN: the rerun keeps every earlier stage and resumes the GAN."
    run = copy_run(ref, tmp_path/'run', ('data', 'style', 'content'))
    args = ['pipeline', '--run', str(run.path), '--ckpt-every', '4']
    kill_after(args, 'gan', 14, tmp_path)                  # 9 steps per epoch: killed in epoch 2, batch 6 in flight
    _, meta = load_checkpoint(run.gan/'checkpoint.safetensors')
    assert (meta['loop']['epoch'], meta['loop']['iter'], meta['loop']['step']) == (1, 3, 12)
    earlier = {p: (p.read_bytes(), p.stat().st_mtime_ns) for s in ('data', 'style', 'content') for p in (run.path/s).rglob('*') if p.is_file()}
    out = rerun(args)
    at = resumed_at('gan', out)
    assert all(p.read_bytes() == b and p.stat().st_mtime_ns == t for p, (b, t) in earlier.items())   # not retrained
    assert '[style] done' in out and '[content] done' in out and (run.path/'report'/'report.html').is_file()
    (w, _), (rw, _) = weights(run.gan/'weights.safetensors'), weights(ref.gan/'weights.safetensors')
    m, rm = [json.loads((r.gan/'metrics.json').read_text()) for r in (run, ref)]
    for x in (m, rm):
        x.pop('train_seconds'); x.pop('seconds', None)
        for h in x['history']: h.pop('time', None); h.pop('minutes', None)
    d_m, d_w = max_diff(m, rm), max_diff(w, rw)
    record('gan (pipeline)', command='pipeline --ckpt-every 4', killed_after_step=14, in_flight_step=15, total_steps=18,
           resumed_at_step=at, steps_lost=14-at, max_metric_diff=d_m, max_weight_diff=d_w,
           metrics={k: m[k] for k in ('fd', 'fd_floor', 'style_top1', 'content_error_eq9', 'spread_ratio')},
           earlier_stage_files_untouched=len(earlier))
    assert at == 12 and 14-at <= 4
    assert d_m <= 1e-6 and d_w <= 1e-6



def test_measure_gan_command_restores_the_measures_and_keeps_the_history(ref, tmp_path):
    "`animestyle measure-gan` on a run whose metrics lack the judge's keys (trained before they existed): they come back the same, history and times kept."
    run = copy_run(ref, tmp_path/'run', [s for s in ('data', 'style', 'content', 'judge', 'gan') if (ref.path/s).is_dir()])
    mfile = run.gan/'metrics.json'
    before = json.loads(mfile.read_text())
    judged = [k for k in before if k.startswith('judge_')]
    assert 'judge_style_fidelity' in judged
    mfile.write_text(json.dumps({k: v for k, v in before.items() if k not in judged}))
    weights_before = (run.gan/'weights.safetensors').read_bytes()
    out = rerun(['measure-gan', '--run', str(run.path)])
    after = json.loads(mfile.read_text())
    assert max_diff({k: after[k] for k in judged}, {k: before[k] for k in judged}) <= 1e-6
    assert after['history'] == before['history'] and after['train_seconds'] == before['train_seconds']
    assert (run.gan/'weights.safetensors').read_bytes() == weights_before          # measured, not retrained
    assert f"judge_style_fidelity: {before['judge_style_fidelity']:.3f}" in out

def test_sigterm_keeps_the_step_checkpoint_and_refuses_a_second_writer(base, tmp_path):
    "SIGTERM mid-epoch: Ctrl-C's line and status 130, the step checkpoint kept; meanwhile a second command on the run is refused."
    run = copy_run(base, tmp_path/'run')
    args = ['train-style', '--run', str(run.path), '--ckpt-every', '1']
    mark = tmp_path/'hang.mark'
    env = {**ENV, 'HANG_STAGE': 'style', 'HANG_AFTER': '3', 'HANG_MARK': str(mark)}
    p = subprocess.Popen([sys.executable, '-c', HANG, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while not mark.exists():
        if p.poll() is not None: pytest.fail(f"{args} ended ({p.returncode}) before step 3:\n{p.stderr.read()[-3000:]}")
        if time.time()-start > WAIT_S: p.kill(); pytest.fail(f"{args} did not reach step 3 in {WAIT_S}s")
        time.sleep(0.1)
    second = subprocess.run([CLI, 'pipeline', '--run', str(run.path)], capture_output=True, text=True, env=ENV, timeout=WAIT_S)
    assert second.returncode == 2 and second.stderr == (f"animestyle: error: run {run.path} is in use by another animestyle command "
                                                       f"(PID {p.pid}): wait for it to end, or stop it with `kill {p.pid}`, then rerun\n"), second.stderr
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=WAIT_S)
    assert p.returncode == 130, err[-3000:]
    assert err == 'animestyle: error: interrupted: rerun the same command to resume\n', err[-3000:]
    _, meta = load_checkpoint(run.style/'metric.last.safetensors')
    assert meta['loop']['step'] == 3
    assert not (run.path/'.run.lock').exists()
    assert resumed_at('style', rerun(args)) == 3


def test_measure_gan_refuses_overwritten_weights(ref, tmp_path):
    "16 KiB overwritten inside a tensor of G's weights: measure-gan names the file in one line instead of measuring other weights."
    sys.path.insert(0, str(ROOT/'tests'))
    from test_cli import overwrite_inside_a_tensor
    run = copy_run(ref, tmp_path/'run', [s for s in ('data', 'style', 'content', 'judge', 'gan') if (ref.path/s).is_dir()])
    before = (run.gan/'metrics.json').read_bytes()
    overwrite_inside_a_tensor(run.gan/'weights.safetensors')
    r = subprocess.run([CLI, 'measure-gan', '--run', str(run.path)], capture_output=True, text=True, env=ENV, timeout=WAIT_S)
    assert r.returncode == 2 and r.stderr == (f"animestyle: error: {run.gan/'weights.safetensors'} is damaged (checksum mismatch): "
                                              f"delete it and rerun `animestyle train-gan --run {run.path}` to rebuild it\n"), r.stderr
    assert (run.gan/'metrics.json').read_bytes() == before

# --- the table of bad-input kinds ---------------------------------------------------------------------------------

# (kind, test file, test function, what the user gets). Each kind is tried by that test; none loses anything on disk.
FAULTS = [
    ('a stage that makes no progress (a hung read or lock)', 'test_reliability.py', 'test_a_hung_stage_ends_in_one_line_naming_it', 'status 4 after $ANIMESTYLE_WATCHDOG_MIN, one line naming the stage, epoch and batch; its checkpoint kept'),
    ('a run written with a retired GAN switch', 'test_core.py', 'test_a_retired_key_opens_only_at_the_value_the_code_still_does', 'RunDirError, one line naming the key and the tagged version'),
    ('a GAN stage whose style or content stage is missing', 'test_gan.py', 'test_a_missing_upstream_stage_is_refused_not_trained', 'GANError naming the command; nothing trained'),
    ('unknown preset name', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError, one line naming it and the choices'),
    ('unknown preset key', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError naming the key and the known keys'),
    ('negative preset value', 'test_core.py', 'test_bad_presets_are_one_line_errors', "PresetError 'style_lr must be positive'"),
    ('nested dropout t outside (0, 1)', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError naming t'),
    ('d_style larger than D', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError'),
    ('code parts longer than code_dim', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError'),
    ('non-integer list value', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError'),
    ('unknown optimiser', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError with the choices'),
    ('image size not a multiple of 8', 'test_core.py', 'test_bad_presets_are_one_line_errors', 'PresetError'),
    ('pickle planted as weights', 'test_core.py', 'test_planted_pickle_is_never_executed', 'CheckpointError; the pickle never runs'),
    ('torch.save archive as weights', 'test_core.py', 'test_planted_pickle_is_never_executed', 'CheckpointError; never unpickled'),
    ('checkpoint with unexpected tensors', 'test_core.py', 'test_unexpected_tensors_refused', "CheckpointError 'does not match'"),
    ('random bytes as a checkpoint', 'test_core.py', 'test_garbage_and_missing_refused', 'CheckpointError'),
    ('missing checkpoint', 'test_core.py', 'test_garbage_and_missing_refused', "CheckpointError 'does not exist'"),
    ('save killed half-way', 'test_core.py', 'test_kill_during_save_keeps_previous', 'the previous checkpoint, whole'),
    ('run directory of another preset (API)', 'test_core.py', 'test_run_dir_refuses_other_preset', 'RunDirError'),
    ('run directory of another version (API)', 'test_core.py', 'test_run_dir_refuses_other_preset', 'RunDirError'),
    ('corrupt or truncated image', 'test_data_bad_input.py', 'test_folder_corpus', 'skipped and counted in skipped.csv'),
    ('text file named .jpg', 'test_data_bad_input.py', 'test_folder_corpus', "skipped: 'not an image'"),
    ('empty image file', 'test_data_bad_input.py', 'test_folder_corpus', "skipped: 'empty file'"),
    ('1-pixel image', 'test_data_bad_input.py', 'test_folder_corpus', "skipped: 'too small'"),
    ('decompression bomb', 'test_data_bad_input.py', 'test_folder_corpus', 'refused before decoding, skipped'),
    ('symlink loop', 'test_data_bad_input.py', 'test_folder_corpus', "skipped: 'symlink loop'"),
    ('non-image file type', 'test_data_bad_input.py', 'test_folder_corpus', 'skipped'),
    ('empty artist folder', 'test_data_bad_input.py', 'test_folder_corpus', 'skipped'),
    ('image outside any artist folder', 'test_data_bad_input.py', 'test_folder_corpus', 'skipped'),
    ('image vanishing while read', 'test_data_bad_input.py', 'test_folder_corpus', "skipped: 'vanished before reading'"),
    ('grey, palette, RGBA, CMYK, 16-bit, WebP images', 'test_data_bad_input.py', 'test_folder_corpus', 'converted to RGB, kept'),
    ('duplicate images across artists', 'test_data_bad_input.py', 'test_duplicates_stay_on_one_side', 'kept on one side of the split'),
    ('malformed metadata line', 'test_data_bad_input.py', 'test_danbooru_corpus', 'skipped and counted'),
    ('deleted or banned post', 'test_data_bad_input.py', 'test_danbooru_corpus', 'skipped and counted'),
    ('post without its image file', 'test_data_bad_input.py', 'test_danbooru_corpus', 'skipped and counted'),
    ('post without or with several artist tags', 'test_data_bad_input.py', 'test_danbooru_corpus', 'skipped and counted'),
    ('video post', 'test_data_bad_input.py', 'test_danbooru_corpus', "skipped: 'not an image post'"),
    ('artist with too few works', 'test_data_bad_input.py', 'test_artist_filter_and_no_images', 'left out and counted'),
    ('collection with no usable image', 'test_data_bad_input.py', 'test_artist_filter_and_no_images', 'NoImagesError; no cache made'),
    ('picture with no face', 'test_data_bad_input.py', 'test_detection_path_crops_faces', "skipped: 'no face found'"),
    ('cache build killed', 'test_data_cache.py', 'test_resume_after_kill', 'no half cache; the rerun resumes its chunks'),
    ('cache assembly failing', 'test_data_cache.py', 'test_failed_assembly_leaves_no_cache', 'no cache; chunks kept for the retry'),
    ('two builders at once', 'test_data_cache.py', 'test_concurrent_builders_build_once', 'built once'),
    ('truncated image cache (API)', 'test_data_cache.py', 'test_damaged_cache_is_refused', "CacheError 'damaged'"),
    ('StyleSpace given a non-image file', 'test_analysis.py', 'test_bad_input_is_one_clear_error', "StyleSpaceError 'is not an image'"),
    ('StyleSpace given a missing file', 'test_analysis.py', 'test_bad_input_is_one_clear_error', "StyleSpaceError 'no image file'"),
    ('StyleSpace given a wrong shape or dtype', 'test_analysis.py', 'test_bad_input_is_one_clear_error', 'StyleSpaceError naming the shape'),
    ('StyleSpace of a missing run', 'test_analysis.py', 'test_missing_or_incompatible_run', "StyleSpaceError 'no run at'"),
    ('StyleSpace of a run without a GAN', 'test_analysis.py', 'test_missing_or_incompatible_run', 'one line naming the command to run'),
    ('StyleSpace of a run with pickled weights', 'test_analysis.py', 'test_missing_or_incompatible_run', 'StyleSpaceError, nothing unpickled'),
    ('explorer upload: empty file', 'test_explorer.py', 'test_upload_of_a_non_image_is_a_message_not_a_traceback', 'a message; sliders unchanged'),
    ('explorer upload: text', 'test_explorer.py', 'test_upload_of_a_non_image_is_a_message_not_a_traceback', 'a message; sliders unchanged'),
    ('explorer upload: PDF', 'test_explorer.py', 'test_upload_of_a_non_image_is_a_message_not_a_traceback', 'a message; sliders unchanged'),
    ('explorer upload: truncated PNG', 'test_explorer.py', 'test_upload_of_a_non_image_is_a_message_not_a_traceback', 'a message; sliders unchanged'),
    ('explorer slider counts out of range', 'test_explorer.py', 'test_bad_settings', 'ExplorerError'),
    ('NaN loss (style)', 'test_reliability.py', 'test_style_nan_stops_at_the_step_and_keeps_the_last_good_checkpoint', 'DivergenceError naming step 3; step 2 checkpoint kept'),
    ('inf loss, skipping (style)', 'test_reliability.py', 'test_style_skip_bad_batches_finishes', 'a warning; the batch skipped; training finishes'),
    ('NaN loss (content)', 'test_reliability.py', 'test_content_nan_stops_at_the_step', 'DivergenceError naming the step'),
    ('NaN D or G loss (GAN)', 'test_reliability.py', 'test_gan_nan_in_either_loss_stops_at_the_step', 'DivergenceError naming D or G and the step'),
    ('NaN loss on the command line', 'test_reliability.py', 'test_cli_divergence_is_one_line_and_status_3', 'one line, status 3'),
    ('GAN collapse', 'test_reliability.py', 'test_gan_collapse_is_a_warning_in_metrics', 'a warning in metrics.json'),
    ('kill -9 mid-epoch (style, content, GAN in the pipeline)', 'test_reliability.py', 'test_kill_style_mid_epoch_then_resume', 'the rerun resumes at the last step checkpoint'),
    ('SIGTERM mid-epoch', 'test_reliability.py', 'test_sigterm_keeps_the_step_checkpoint_and_refuses_a_second_writer', "Ctrl-C's line, status 130; the rerun resumes"),
    ('a second command on a run in use', 'test_reliability.py', 'test_sigterm_keeps_the_step_checkpoint_and_refuses_a_second_writer', 'one line naming the PID of the first'),
    ('weights overwritten inside a tensor', 'test_reliability.py', 'test_measure_gan_refuses_overwritten_weights', 'one line: checksum mismatch, the command that rebuilds it'),
    ('a bug (TypeError, a bare ValueError from a library)', 'test_cli.py', 'test_bugs_show_their_traceback_user_errors_do_not', 'its traceback, status 1'),
    ('disk full while a checkpoint is written', 'test_cli.py', 'test_disk_full_while_writing_a_checkpoint_is_one_line', 'one line with the file and the free space; the previous file kept'),
]


def _test_names(fname):
    tree = ast.parse((ROOT/'tests'/fname).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_fault_table_counts_at_least_25_kinds():
    sys.path.insert(0, str(ROOT/'tests'))
    from test_cli import CLI_FAULTS
    rows = [(k, f, t, what) for k, f, t, what in FAULTS] + [(f'CLI: {k}', 'test_cli.py', 'test_bad_input_is_one_line_and_changes_nothing',
            f"exit 2, one line: ...{says}...") for k, _, _, says in CLI_FAULTS]
    for _, f, t, _ in rows: assert t in _test_names(f), f'{f} has no test {t}'
    kinds = [r[0] for r in rows]
    assert len(set(kinds)) == len(kinds) >= 25
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lines = [f'# Bad input tried by the tests: {len(kinds)} kinds', '', '| fault kind | what the user got | nothing lost | test |', '|---|---|---|---|']
    lines += [f'| {k} | {what} | yes | {f}::{t} |' for k, f, t, what in rows]
    (ARTIFACTS/'faults.md').write_text('\n'.join(lines) + '\n')


HUNG = """
import sys, time, warnings
warnings.simplefilter('ignore', FutureWarning)  # fastai's import trips torch's deprecation notice
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.callback.core import Callback
from animestyle.core import Watchdog
class Hang(Callback):
    def before_batch(self):
        if self.training and self.iter == 2: time.sleep(3600)   # a stuck read: no batch ever finishes
ds = [(torch.randn(4), torch.randn(1)) for _ in range(64)]
dls = DataLoaders(DataLoader(ds, bs=8, drop_last=True), DataLoader(ds, bs=8))
learn = Learner(dls, torch.nn.Linear(4, 1), loss_func=torch.nn.functional.mse_loss, cbs=[Watchdog(minutes=0.05), Hang()])
with learn.no_logging(): learn.fit(1)
"""


def test_a_hung_stage_ends_in_one_line_naming_it():
    "No batch finishes for the watchdog's minutes: the process ends with status 4 and one line naming the stage and where it stopped."
    t = time.time()
    r = subprocess.run([sys.executable, '-c', HUNG], capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and time.time() - t < 60
    lines = r.stderr.strip().splitlines()
    assert lines == ["animestyle: error: Linear made no progress for 0.05 min (epoch 1, batch 3): stopped; its last checkpoint is kept, rerun the same command to resume"], r.stderr
