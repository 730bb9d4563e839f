"Content VAE (notebook 06): nested dropout, the style-conditioned decoder, eq. 4's estimate, training, resuming."
import math

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback

from animestyle.core import RunDir, get_preset, load_checkpoint, seed_everything
from animestyle.content import (ContentError, ContentVAE, ContentVAELoss, eq4_exact, load_content_encoder,
                                nested_dropout, reconstruction_loss, sample_prefix_lengths,
                                style_stub, train_content)
from animestyle.data.loaders import prepare_data
from animestyle.style import nested_dropout_weights

P = get_preset('tiny')


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, P.image_size, P.image_size, generator=g)*2-1


def test_nested_dropout_keeps_prefix_and_zeroes_suffix():
    z = torch.randn(64, 20)
    d = torch.randint(0, 21, (64,))
    out = nested_dropout(z, d)
    for row,k in enumerate(d.tolist()):
        assert torch.equal(out[row, :k], z[row, :k])
        assert torch.equal(out[row, k:], torch.zeros(20-k))
    z.requires_grad_(True)
    nested_dropout(z, d).sum().backward()
    assert torch.equal(z.grad, (torch.arange(20)[None] < d[:, None]).float())


def test_prefix_lengths_follow_eq3_weights():
    g = torch.Generator().manual_seed(0)
    d = sample_prefix_lengths(100_000, 10, 0.8, generator=g)
    assert d.min() >= 1 and d.max() <= 10
    freq = torch.bincount(d, minlength=11)[1:].double()/len(d)
    w = nested_dropout_weights(10, 0.8)
    se = (w*(1-w)/len(d)).sqrt()
    assert ((freq-w).abs() < 5*se).all()


class ConstStyle(torch.nn.Module):
    "A style network whose code is a settable constant."
    def __init__(self, code): super().__init__(); self.register_buffer('code', code)
    def forward(self, x): return self.code[:len(x)]


def test_decoder_receives_the_style_code():
    seed_everything(0)
    g = torch.Generator().manual_seed(1)
    a,b = torch.randn(2, 4, P.d_style, generator=g)
    vae = ContentVAE(P, ConstStyle(a.clone())).eval()
    x = images(4)
    with torch.no_grad():
        out_a = vae(x)[0]
        vae.style.code.copy_(b)
        out_b = vae(x)[0]
        vae.style.code.copy_(a)
        again = vae(x)[0]
    assert torch.equal(out_a, again)
    assert (out_a-out_b).abs().mean() > 1e-4
    assert vae.dec.n_in == P.d_style+P.content_dim


def test_sampled_eq4_matches_exact_sum():
    seed_everything(0)
    vae = ContentVAE(P, style_stub(P)).eval()
    x = images(2)
    exact = eq4_exact(vae, x)
    n = 1500
    with torch.no_grad():
        xs = x.repeat(n, 1, 1, 1)
        d = sample_prefix_lengths(len(xs), vae.D, vae.t, generator=torch.Generator().manual_seed(2))
        est = reconstruction_loss(vae(xs, d=d)[0], xs).double().view(n, 2)
    se = est.std(0)/math.sqrt(n)
    assert ((est.mean(0)-exact).abs() < 4*se).all()
    # the last prefix only is not the expectation: the check can fail
    with torch.no_grad(): full = reconstruction_loss(vae(x)[0], x).double()
    assert ((full-exact).abs() > 4*se).all()


def test_training_steps_are_finite_and_move_only_enc_dec():
    seed_everything(0)
    vae = ContentVAE(P, style_stub(P)).train()
    style_before = {k:v.clone() for k,v in vae.style.state_dict().items()}
    before = {k:v.clone() for k,v in vae.vae_state().items()}
    opt = torch.optim.RMSprop([q for q in vae.parameters() if q.requires_grad], lr=P.content_lr)
    loss_func = ContentVAELoss()
    x = images(8)
    for _ in range(3):
        loss = loss_func(vae(x), x)
        assert torch.isfinite(loss)
        opt.zero_grad(); loss.backward(); opt.step()
    after = vae.vae_state()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith('enc.') for k in moved) and any(k.startswith('dec.') for k in moved)
    assert all(torch.equal(v, vae.style.state_dict()[k]) for k,v in style_before.items())
    assert not vae.style.training


class Crash(Exception): pass


class CrashAfter(Callback):
    "Simulate a kill once the checkpoint of epoch `n` is written."
    order = 99
    def __init__(self, n): self.n = n
    def after_epoch(self):
        if self.epoch+1 == self.n: raise Crash('simulated kill')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    run = RunDir(tmp_path_factory.mktemp('content')/'run', P)
    prepare_data(run, workers=1)
    return run


def test_resume_after_interruption(tiny_run):
    run,style = tiny_run,style_stub(P)
    with pytest.raises(Crash): train_content(run, epochs=3, style=style, cbs=[CrashAfter(2)])
    assert not (run.content/'vae.safetensors').exists()
    _,meta = load_checkpoint(run.content/'checkpoint.safetensors')
    assert meta['epochs_done'] == 2
    first_two = meta['history']
    vae = train_content(run, epochs=3, style=style)
    _,meta = load_checkpoint(run.content/'vae.safetensors')
    assert [h['epoch'] for h in meta['history']] == [0, 1, 2]
    assert meta['history'][:2] == first_two
    assert all(math.isfinite(h['rec']) and math.isfinite(h['kl']) for h in meta['history'])
    assert sorted(p.name for p in (run.content/'recon').glob('*.png')) == ['epoch_01.png', 'epoch_02.png', 'epoch_03.png']
    # finished: a second call loads, it does not train
    mtime = (run.content/'vae.safetensors').stat().st_mtime_ns
    again = train_content(run, epochs=3, style=style)
    assert (run.content/'vae.safetensors').stat().st_mtime_ns == mtime
    x = images(3)
    with torch.no_grad():
        torch.testing.assert_close(again.enc(x)[0], vae.enc(x)[0])
        enc = load_content_encoder(run)
        torch.testing.assert_close(enc.encode(x), vae.enc(x)[0])
    assert not any(q.requires_grad for q in enc.parameters())
    with pytest.raises(ContentError, match='force=True'): train_content(run, epochs=3, kl_weight=0.5, style=style)


def test_mlp_probe_reads_a_factor_stored_nonlinearly():
    "A factor written as the radius of a ring in the code is invisible to the linear probe and plain to the MLP probe."
    from animestyle.content import probe
    rng = np.random.default_rng(0)
    def codes(n):
        y = rng.integers(0, 2, n)  # the factor
        ang, r = rng.uniform(0, 2*np.pi, n), np.where(y == 1, 2., 1.) + rng.normal(0, 0.1, n)
        return np.c_[r*np.cos(ang), r*np.sin(ang), rng.normal(size=(n, 6))], y
    (Xtr, ytr), (Xte, yte) = codes(1200), codes(400)
    lin, mlp = probe(Xtr, ytr, Xte, yte), probe(Xtr, ytr, Xte, yte, kind='mlp')
    assert lin['score'] < lin['chance'] + 0.1 and mlp['score'] > 0.9, (lin, mlp)
    with pytest.raises(ValueError, match="probe kind"): probe(Xtr, ytr, Xte, yte, kind='forest')


class HeldOutOffset(Callback):
    "Add `offsets[epoch]` to every held-out batch's loss: a scripted held-out curve for the early stopping to read."
    order = 49  # before the Recorder (50) averages it
    def __init__(self, offsets): self.offsets = offsets
    def after_loss(self):
        if not self.training: self.learn.loss = self.learn.loss + self.offsets.get(self.learn.content_checkpoint.offset+self.epoch, 0.)


class Snapshot(Callback):
    "The VAE's tensors after each epoch of the fit."
    order = 99
    def __init__(self): self.states = {}
    def after_epoch(self): self.states[self.learn.content_checkpoint.offset+self.epoch] = {k: v.clone() for k, v in self.learn.model.vae_state().items()}


def test_early_stopping_keeps_the_best_epoch_across_a_resume(tmp_path):
    "patience=2: killed after epoch 3, the rerun stops after epoch 4 (two epochs above epoch 2's held-out loss) and keeps epoch 2's weights."
    run, style = RunDir(tmp_path/'run', P), style_stub(P)
    prepare_data(run, workers=1)
    offsets = {1: -1e4, 2: 1e4, 3: 1e4, 4: 1e4, 5: 1e4}  # the held-out loss is lowest, by far, after epoch index 1
    snap = Snapshot()
    with pytest.raises(Crash): train_content(run, epochs=6, style=style, patience=2, cbs=[HeldOutOffset(offsets), snap, CrashAfter(3)])
    train_content(run, epochs=6, style=style, patience=2, cbs=[HeldOutOffset(offsets)])
    t, meta = load_checkpoint(run.content/'vae.safetensors')
    assert [h['epoch'] for h in meta['history']] == [0, 1, 2, 3]  # epochs 2 and 3 did not improve on 1: no epoch 4
    assert meta['stopped_early'] and meta['best_epoch'] == 1 and meta['epochs_done'] == 4
    assert all(torch.equal(t[k], snap.states[1][k]) for k in t)  # the best epoch's weights, not the last one's
    last = {k[6:]: v for k, v in load_checkpoint(run.content/'checkpoint.safetensors')[0].items() if k.startswith('model.')}
    assert not all(torch.equal(t[k], last[k]) for k in t)
    enc = load_content_encoder(run)
    assert all(torch.equal(v, t[f'enc.{k}']) for k, v in enc.state_dict().items())
    mtime = (run.content/'vae.safetensors').stat().st_mtime_ns
    train_content(run, epochs=6, style=style, patience=2)  # stopped early is finished: loaded, not trained on
    assert (run.content/'vae.safetensors').stat().st_mtime_ns == mtime
    with pytest.raises(ContentError, match='force=True'): train_content(run, epochs=6, style=style)  # trained with patience
    with pytest.raises(ValueError, match='patience must be a whole number'): train_content(run, style=style, patience=0)


def test_without_patience_every_epoch_runs_and_the_last_is_kept(tmp_path):
    run, style = RunDir(tmp_path/'run', P), style_stub(P)
    prepare_data(run, workers=1)
    snap = Snapshot()
    train_content(run, epochs=3, style=style, cbs=[HeldOutOffset({1: -1e4, 2: 1e4}), snap])
    t, meta = load_checkpoint(run.content/'vae.safetensors')
    assert len(meta['history']) == 3 and 'stopped_early' not in meta and 'patience' not in meta['settings']
    assert all(torch.equal(t[k], snap.states[2][k]) for k in t)
