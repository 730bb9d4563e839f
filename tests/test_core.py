"Checks of `animestyle.core` that serve CI rather than the reader: bad presets, hostile checkpoints."
import json, os, pickle, subprocess, sys
from pathlib import Path

import pytest
import torch

from animestyle.core import *
from animestyle.training import *


@pytest.mark.parametrize('kw,msg', [
    (dict(name='nope'), "unknown preset 'nope'"),
    (dict(name='cpu', foo=1), "unknown preset key 'foo'"),
    (dict(name='cpu', style_lr=-1), 'style_lr must be positive'),
    (dict(name='cpu', content_t=0), 'content_t must'),
    (dict(name='cpu', style_t=1.5), 'style_t must lie strictly between 0 and 1'),
    (dict(name='paper', d_style=513), 'd_style (513) exceeds style_dim D (512)'),
    (dict(name='paper', d_content=400, d_style=200), 'exceeds code_dim'),
    (dict(name='cpu', style_features='32,x'), 'style_features must be a comma-separated list of integers'),
    (dict(name='cpu', gan_opt='lbfgs'), 'gan_opt must be one of'),
    (dict(name='cpu', image_size=30), 'image_size must be a multiple of 8'),
    (dict(name='cpu', style_flip='maybe'), 'style_flip must be true or false'),
])
def test_bad_presets_are_one_line_errors(kw, msg):
    with pytest.raises(PresetError) as e: get_preset(**kw)
    assert msg in str(e.value) and '\n' not in str(e.value)


def test_boolean_preset_values():
    assert get_preset('paper').style_flip is False and get_preset('cpu').style_flip is True
    assert get_preset('cpu', style_flip='no').style_flip is False and get_preset('paper', style_flip=1).style_flip is True


def test_env_selects_preset(monkeypatch):
    monkeypatch.setenv(PRESET_ENV, 'paper')
    assert get_preset().name == 'paper'
    monkeypatch.delenv(PRESET_ENV)
    assert get_preset().name == DEFAULT_PRESET


def test_planted_pickle_is_never_executed(tmp_path):
    "A pickle that would create a file when unpickled is refused, and the file never appears."
    marker = tmp_path/'pwned'
    class Evil:
        def __reduce__(self): return (Path.touch, (marker,))
    (tmp_path/'w.safetensors').write_bytes(pickle.dumps({'w': Evil()}))
    with pytest.raises(CheckpointError, match='pickle'): load_checkpoint(tmp_path/'w.safetensors')
    torch.save({'w': Evil()}, tmp_path/'w2.safetensors')
    with pytest.raises(CheckpointError, match='pickle'): load_checkpoint(tmp_path/'w2.safetensors')
    assert not marker.exists()


def test_unexpected_tensors_refused(tmp_path):
    save_checkpoint(tmp_path/'c.safetensors', {'a': torch.ones(2), 'b': torch.zeros(1)})
    with pytest.raises(CheckpointError, match='does not match'): load_checkpoint(tmp_path/'c.safetensors', expect=['a'])
    t, meta = load_checkpoint(tmp_path/'c.safetensors', expect=['a', 'b'])
    assert torch.equal(t['a'], torch.ones(2)) and meta == {}


def test_garbage_and_missing_refused(tmp_path):
    (tmp_path/'g.safetensors').write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError): load_checkpoint(tmp_path/'g.safetensors')
    with pytest.raises(CheckpointError, match='does not exist'): load_checkpoint(tmp_path/'none.safetensors')


def test_kill_during_save_keeps_previous(tmp_path):
    "A process killed in the middle of writing leaves the previous checkpoint whole."
    ck = tmp_path/'m.safetensors'
    save_checkpoint(ck, {'w': torch.arange(4.)}, dict(step=1))
    code = f"""
import os, torch, safetensors.torch as st
import animestyle.core as c
def die(t, fn, metadata=None):
    open(fn, 'wb').write(b'partial'); os._exit(9)
c.save_file = die
c.save_checkpoint({str(ck)!r}, {{'w': torch.zeros(4)}}, dict(step=2))
"""
    r = subprocess.run([sys.executable, '-c', code])
    assert r.returncode == 9
    t, meta = load_checkpoint(ck)
    assert meta['step'] == 1 and torch.equal(t['w'], torch.arange(4.))


def test_run_dir_refuses_other_preset(tmp_path):
    RunDir(tmp_path/'r', get_preset('tiny'))
    with pytest.raises(RunDirError, match="made with preset 'tiny'"): RunDir(tmp_path/'r', get_preset('cpu'))
    (tmp_path/'bad').mkdir(); (tmp_path/'bad'/'config.json').write_text('{"preset": {"name": "x"}}')
    with pytest.raises(RunDirError, match='incompatible'): RunDir(tmp_path/'bad')


def test_header_length_ending_in_0x80_is_not_a_pickle(tmp_path):
    "A valid file whose 8-byte header length starts with byte 0x80 (a pickle's first byte) still loads."
    import struct
    for pad in range(0, 400):
        ck = save_checkpoint(tmp_path/'h.safetensors', {'w': torch.ones(3)}, {'pad': 'x'*pad})
        if ck.read_bytes()[0] == 0x80: break
    else: pytest.fail('no padding gave a header length ending in 0x80')
    t, meta = load_checkpoint(ck)
    assert torch.equal(t['w'], torch.ones(3)) and meta['pad'] == 'x'*pad


def test_resumed_optimiser_state_follows_channels_last_parameters():
    "A moment loaded in the default layout, for a parameter fastai's ChannelsLast moved: fused Adam must see one layout."
    import torch
    from animestyle.core import align_opt_state
    conv = torch.nn.Conv2d(3, 4, 3)
    opt = torch.optim.Adam(conv.parameters(), fused=True)
    conv(torch.randn(2, 3, 8, 8)).sum().backward(); opt.step()
    ref = {k: v.clone() for k, v in opt.state[conv.weight].items()}
    conv.to(memory_format=torch.channels_last)            # what ChannelsLast does at before_fit
    assert opt.state[conv.weight]['exp_avg'].stride() != conv.weight.stride()
    align_opt_state(opt)
    st = opt.state[conv.weight]
    assert st['exp_avg'].stride() == conv.weight.stride() and st['exp_avg_sq'].stride() == conv.weight.stride()
    assert torch.equal(st['exp_avg'], ref['exp_avg']) and torch.equal(st['exp_avg_sq'], ref['exp_avg_sq'])  # same values


def test_layout_callback_aligns_the_optimisers_the_gan_trainer_keeps():
    "The GAN trains channels_last on a bf16 CPU: a resumed run's G and D moments, held by GANTrainer rather than the Learner, follow their parameters."
    import torch
    from types import SimpleNamespace
    from animestyle.core import OptLayout
    from animestyle.gan_train import GANTrainer
    g, d = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 4, 3)
    tr = GANTrainer()
    tr.opt_g, tr.opt_d = (torch.optim.Adam(m.parameters(), fused=True) for m in (g, d))
    for m, o in ((g, tr.opt_g), (d, tr.opt_d)): m(torch.randn(2, 3, 8, 8)).sum().backward(); o.step()
    for m in (g, d): m.to(memory_format=torch.channels_last)
    assert tr.opt_d.state[d.weight]['exp_avg'].stride() != d.weight.stride()
    cb = OptLayout(); cb.learn = SimpleNamespace(opt=tr.opt_d, cbs=[tr, cb])
    cb.before_fit()
    assert all(o.state[m.weight][k].stride() == m.weight.stride() for m, o in ((g, tr.opt_g), (d, tr.opt_d)) for k in ('exp_avg', 'exp_avg_sq'))


def test_a_run_written_before_the_newer_gan_keys_still_opens(tmp_path):
    "A config.json without a GAN key added later opens with the value that does what the run did (not today's preset value); any other missing key is refused."
    import json
    from animestyle.core import ADDED_KEYS
    RunDir(tmp_path/'r', get_preset('cpu'))
    cfg = tmp_path/'r'/'config.json'
    d = json.loads(cfg.read_text())
    for k in ADDED_KEYS: del d['preset'][k]
    cfg.write_text(json.dumps(d))
    old = RunDir(tmp_path/'r').preset
    assert old == get_preset('cpu', **ADDED_KEYS) and old != get_preset('cpu')  # cpu maps the code (gan_mapping 2); that run did not
    del d['preset']['gan_ema']
    cfg.write_text(json.dumps(d))
    with pytest.raises(RunDirError, match='incompatible'): RunDir(tmp_path/'r')


def test_a_retired_key_opens_only_at_the_value_the_code_still_does(tmp_path):
    "A run written while the GAN search's switches existed opens if it left them off, and is refused in one line if it used one."
    import json
    from animestyle.core import RETIRED_KEYS
    RunDir(tmp_path/'r', get_preset('tiny'))
    cfg = tmp_path/'r'/'config.json'
    d = json.loads(cfg.read_text())
    d['preset'].update(RETIRED_KEYS)
    cfg.write_text(json.dumps(d))
    assert RunDir(tmp_path/'r').preset == get_preset('tiny')
    for k, v, tag in [('gan_noise', True, 'gan-search-final'), ('gan_recon', 10., 'gan-search-final'), ('gan_upsample', 'nearest', 'gan-search-final'),
                      ('gan_arch', 'cbn', 'gan-search-final'), ('gan_disc', 'plain', 'gan-search-final'), ('gan_artist_patch', True, 'gan-artist-patch')]:
        cfg.write_text(json.dumps({**d, 'preset': {**d['preset'], k: v}}))
        with pytest.raises(RunDirError, match=f"sets {k} = {v}, which this animestyle no longer has") as e: RunDir(tmp_path/'r')
        assert '\n' not in str(e.value) and f'tagged version {tag} ' in str(e.value)  # the last version that still trains it


def test_validate_refuses_combinations_that_would_do_nothing():
    with pytest.raises(PresetError, match="gan_mapping .* needs gan_arch = 'cbn_deep'"): get_preset('paper', gan_mapping=2)
    with pytest.raises(PresetError, match="gan_beta1 .* is Adam's"): get_preset('paper', gan_beta1=0.5)
    get_preset('cpu', gan_beta1=0.5)  # Adam reads it


def test_flop_meter_counts_a_step_and_every_image():
    "A linear layer's step costs 2*in*out FLOPs per image forward and as many for its weight gradient; every training image of the fit is counted."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    ds = [(torch.randn(10), torch.randn(3)) for _ in range(64)]
    dls = DataLoaders(DataLoader(ds, bs=16, shuffle=True, drop_last=True), DataLoader(ds, bs=16))
    learn = Learner(dls, torch.nn.Linear(10, 3), loss_func=torch.nn.functional.mse_loss, cbs=[FlopMeter(n=3)])
    FLOP_LOG.clear()
    with learn.no_logging(): learn.fit(2)
    (rec,) = FLOP_LOG
    assert rec['images'] == 2 * 4 * 16 and rec['model'] == 'Linear'
    assert abs(rec['gflop_per_image'] - 4 * 10 * 3 / 1e9) < 1e-15
    assert abs(flop_summary()['tflop'] - rec['gflop_per_image'] * 128 / 1e3) < 1e-18


def test_flop_meter_lets_a_loss_take_gradients_of_gradients():
    "R1 takes the gradient of D at its inputs inside the loss (autograd.grad with create_graph): the meter must not break it."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    class R1ish(torch.nn.Module):
        def __init__(self): super().__init__(); self.lin = torch.nn.Linear(4, 1)
        def forward(self, x):
            if not torch.is_grad_enabled(): return self.lin(x)  # validation
            x = x.detach().requires_grad_(True)
            g, = torch.autograd.grad(self.lin(x).sum(), x, create_graph=True)
            return self.lin(x) + g.pow(2).sum(1, keepdim=True)
    ds = [(torch.randn(4), torch.randn(1)) for _ in range(32)]
    dls = DataLoaders(DataLoader(ds, bs=8, drop_last=True), DataLoader(ds, bs=8))
    learn = Learner(dls, R1ish(), loss_func=torch.nn.functional.mse_loss, cbs=[FlopMeter()])
    FLOP_LOG.clear()
    with learn.no_logging(): learn.fit(1)
    assert FLOP_LOG[-1]['gflop_per_image'] > 0 and FLOP_LOG[-1]['images'] == 32


def test_stage_eta_says_the_steps_and_minutes_left_once(capsys):
    "After 3 warm-up and 30 timed steps of a 64-step fit, one line: 31 steps left, with the pace so far."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    ds = [(torch.randn(4), torch.randn(1)) for _ in range(64)]
    dls = DataLoaders(DataLoader(ds, bs=2, shuffle=True, drop_last=True), DataLoader(ds, bs=2))
    learn = Learner(dls, torch.nn.Linear(4, 1), loss_func=torch.nn.functional.mse_loss, cbs=[StageETA(after=30)])
    with learn.no_logging(): learn.fit(2)
    lines = [l for l in capsys.readouterr().out.splitlines() if 'min left' in l]
    assert len(lines) == 1 and lines[0].startswith('[Linear] about ') and '31 steps)' in lines[0], lines  # on a line of its own
