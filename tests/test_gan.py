"The conditional GAN at the tiny preset: consortium patches, alternating steps, frozen encoders, resume."
import math

import numpy as np
import pytest
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader

from animestyle.core import RunDir, get_preset, seed_everything, load_checkpoint
from animestyle.layers import Generator, StyleEncoder, ContentEncoder
import animestyle.gan as gan_mod
import animestyle.gan_train as train_mod
from animestyle.gan import (PATCHES, GANError, MultiScaleDiscriminator, StyleCondition, ContentCondition, CondGAN,
                            sample_offsets, consortium_views, d_loss)
from animestyle.gan_train import gan_learner, train_gan, load_gan, GANStage
from animestyle.data.loaders import real_batches
from animestyle.style import StyleCode

P = get_preset('tiny')


def _conditions(p=P):
    return StyleCondition(StyleCode(p, 6)), ContentCondition(ContentEncoder(p), p.d_content)


def _gan(p=P):
    return CondGAN(Generator(p), MultiScaleDiscriminator(p), *_conditions(p), p)


def _dls(n=64, bs=16, side=32):
    ds = [(torch.rand(3, side, side) * 2 - 1, 0) for _ in range(n)]
    return DataLoaders(DataLoader(ds, bs=bs, shuffle=True, drop_last=True), DataLoader(ds, bs=bs))


@pytest.mark.parametrize('name', ['tiny', 'cpu', 'paper'])
def test_consortium_patch_sizes_and_counts(name):
    p = get_preset(name)
    s, q = p.image_size, p.image_size // 4
    x = torch.randn(2, 3, s, s)
    views = consortium_views(x, sample_offsets(2, s))
    assert [tuple(v.shape) for v in views] == [(2 * k, 3, q, q) for k in PATCHES]
    assert PATCHES == (1, 4, 16)
    offs = sample_offsets(500, s)
    assert offs[0].max() == 0 and offs[1].max() <= q and offs[2].max() <= 3 * q
    assert offs[1].max() == q and offs[2].max() == 3 * q  # corners cover every valid position


def test_patches_are_crops_at_the_right_scale():
    x = torch.randn(1, 3, 32, 32)
    offs = sample_offsets(1, 32)
    v1, v2, v3 = consortium_views(x, offs)
    r, c = offs[2][0, 7].tolist()
    assert torch.equal(v3[7], x[0, :, r:r + 8, c:c + 8])
    r, c = offs[1][0, 3].tolist()
    assert torch.allclose(v2[3], torch.nn.functional.avg_pool2d(x, 2)[0, :, r:r + 8, c:c + 8])
    assert torch.allclose(v1[0], torch.nn.functional.avg_pool2d(x, 4)[0])


def test_real_and_fake_get_the_same_patches(monkeypatch):
    D = MultiScaleDiscriminator(P)
    seen = []
    orig = D.forward
    def spy(x, offsets=None):
        seen.append(offsets); return orig(x, offsets)
    monkeypatch.setattr(D, 'forward', spy)
    real, fake = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    rl, fl = D.critic_pair(real, fake)
    offs = seen[0]
    for o in offs: assert torch.equal(o[:4], o[4:])  # the i-th real and i-th fake image: same corners
    assert [tuple(l.shape) for l in rl] == [tuple(l.shape) for l in fl] == [(4, k) for k in PATCHES]
    rl2, fl2 = D.critic_pair(real, real.clone())
    for a, b in zip(rl2, fl2): assert torch.allclose(a, b)
    with pytest.raises(GANError): D.critic_pair(real, fake[:3])


def test_d_loss_is_eq5():
    r = [torch.full((2, k), 3.) for k in PATCHES]
    f = [torch.full((2, k), -3.) for k in PATCHES]
    want = -math.log(1 / (1 + math.exp(-3))) - math.log(1 - 1 / (1 + math.exp(3)))
    assert abs(d_loss(r, f).item() - want) < 1e-5
    assert d_loss(r, f) < d_loss(f, r)  # D is rewarded for high logits on real images


def test_training_moves_d_and_g_but_not_s_or_enc():
    seed_everything(0)
    gan = _gan()
    learn = gan_learner(_dls(), gan)
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    d_losses, g_losses = [], []
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cbs=[_Spy(d_losses, g_losses)])
    assert len(d_losses) == 2 and len(g_losses) == 2  # 4 batches: D, G, D, G
    assert all(np.isfinite(d_losses)) and all(np.isfinite(g_losses))
    changed = lambda pre: [k for k, v in gan.state_dict().items() if k.startswith(pre) and not torch.equal(before[k], v)]
    assert changed('generator.') and changed('critic.')
    assert not changed('style.') and not changed('content.')
    assert all(not q.requires_grad for q in gan.style.parameters()) and all(not q.requires_grad for q in gan.content.parameters())
    assert not gan.style.training and not gan.content.training


from fastai.callback.core import Callback
class _Spy(Callback):
    order = 100
    def __init__(self, d, g): self.d, self.g = d, g
    def after_loss(self):
        (self.g if self.learn.loss_func.phase == 'gen' else self.d).append(self.loss.item())


def test_d_step_moves_only_d_and_g_step_only_g():
    seed_everything(1)
    gan = _gan()
    learn = gan_learner(_dls(n=16, bs=16), gan)  # one batch per epoch: a single D step
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    moved = lambda pre: any(not torch.equal(before[k], v) for k, v in gan.state_dict().items() if k.startswith(pre))
    assert moved('critic.') and not moved('generator.')


def test_train_gan_checkpoints_and_resumes(tmp_path):
    conds = []
    def fake_conditions():
        conds.append(_conditions(P))
        return (*conds[-1], None)
    run = RunDir(tmp_path / 'run', P)
    train_gan(run, epochs=1, evaluate=False, device='cpu', conditions=fake_conditions())
    ck = run.gan / 'checkpoint.safetensors'
    assert load_checkpoint(ck)[1]['epoch'] == 1
    assert (run.gan / 'samples' / 'epoch_001.png').is_file()
    (run.gan / 'weights.safetensors').unlink()  # as if killed after the first epoch's checkpoint
    out = train_gan(run, epochs=2, device='cpu', conditions=fake_conditions())
    assert isinstance(out, GANStage) and out.epoch == 2 and load_checkpoint(ck)[1]['epoch'] == 2
    assert [h['epoch'] for h in out.metrics['history']] == [1, 2]
    assert (run.gan / 'samples' / 'epoch_002.png').is_file()
    for k in ('style_top1', 'content_error_eq9', 'fd', 'fd_floor', 'spread_ratio'): assert k in out.metrics
    again = train_gan(run, epochs=2, device='cpu')  # finished: loads, does not retrain
    assert all(torch.equal(a, b) for a, b in zip(again.G.state_dict().values(), out.G.state_dict().values()))
    # tiny's `gan_style_prior = data`: the stored bank is the normalised S codes of the training images G trained with
    from animestyle.data.loaders import prepare_data
    cache = prepare_data(run)
    train = np.flatnonzero(cache.manifest.split.values == 'train')
    with torch.no_grad(): codes = torch.cat([conds[-1][0](x) for x in real_batches(cache, train, 'cpu')])
    torch.testing.assert_close(out.style_bank, codes)


def test_normal_prior_stores_no_bank(tmp_path):
    out = train_gan(RunDir(tmp_path / 'run', get_preset('tiny', gan_style_prior='normal')), epochs=1, evaluate=False, device='cpu',
                    conditions=(*_conditions(), None))
    assert out.style_bank is None


def test_a_missing_upstream_stage_is_refused_not_trained(tmp_path):
    run = RunDir(tmp_path / 'run', P)
    with pytest.raises(GANError, match='no trained style stage.*animestyle train-style'): train_gan(run, epochs=1, device='cpu')
    assert not (run.path / 'style').exists() and not (run.path / 'judge').exists()  # nothing trained behind the user's back


def test_load_gan_without_stage_is_a_clear_error(tmp_path):
    with pytest.raises(GANError, match='no trained GAN'): load_gan(RunDir(tmp_path / 'r', P))


def test_seed_reseeds_the_gan_alone(tmp_path):
    def fixed_conditions():  # the same S and Enc whatever the training seed
        with torch.random.fork_rng(): torch.manual_seed(0); c = _conditions(P)
        return (*c, None)
    a = train_gan(RunDir(tmp_path / 'a', P), epochs=1, evaluate=False, device='cpu', conditions=fixed_conditions())
    run_b = RunDir(tmp_path / 'b', P)
    b = train_gan(run_b, epochs=1, evaluate=False, device='cpu', seed=7, conditions=fixed_conditions())
    # another G from the same data and encoders: its style bank is the same, its weights are not
    torch.testing.assert_close(a.style_bank, b.style_bank)
    assert not all(torch.equal(x, y) for x, y in zip(a.G.state_dict().values(), b.G.state_dict().values()))
    assert load_checkpoint(run_b.gan / 'weights.safetensors')[1]['seed'] == 7
    with pytest.raises(GANError, match='trained with seed 7, not 42'): train_gan(run_b, epochs=2, device='cpu', conditions=fixed_conditions())


# ---- what the cpu preset adds: G's moving average, R1, the conditional D, and the independent judge ----
from animestyle.gan import CondGANLoss, build_generator, build_critic, ema_update, d_loss as eq5, R1_EVERY
from animestyle.gan_train import GANSamples
from animestyle.gan_measure import judge_gan, RealFeatures


def _cpu_like_gan(p=P):
    return CondGAN.from_preset(build_generator(p), build_critic(p), *_conditions(p), p)


def test_ema_weights_differ_from_g_and_draw_every_sample(tmp_path):
    seed_everything(0)
    gan = _cpu_like_gan()
    assert gan.generator_ema is not None and gan.sampler is gan.generator_ema
    learn = gan_learner(_dls(), gan)
    codes = gan.sample(4, torch.Generator().manual_seed(0))
    sampler_cb = GANSamples(tmp_path / 'samples', codes, ncols=4)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, cbs=[sampler_cb])
    g, e = dict(gan.generator.named_parameters()), dict(gan.generator_ema.named_parameters())
    assert not all(torch.equal(g[k], e[k]) for k in g)  # an average of past weights, not G itself
    assert int(gan.ema_steps) == 4  # one update per G step: 4 batches a epoch, half of them G steps
    assert not any(q.requires_grad for q in gan.generator_ema.parameters())
    from PIL import Image
    from animestyle.gan_measure import to_rgb_grid
    saved = np.asarray(Image.open(sampler_cb.last))
    with torch.no_grad():
        assert np.array_equal(saved, to_rgb_grid(gan.generator_ema(codes), 4))
        assert not np.array_equal(saved, to_rgb_grid(gan.generator.eval()(codes), 4))
    z = gan.sample(3)
    with torch.no_grad(): torch.testing.assert_close(gan.generate(*[t for t in gan_mod.split_code(z, P)]), gan.generator_ema(z))


def test_ema_update_is_a_moving_average():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    w0 = a.weight.detach().clone()
    ema_update(a, b, 0.9)
    torch.testing.assert_close(a.weight, 0.9 * w0 + 0.1 * b.weight.detach())


def test_no_ema_when_the_preset_says_0():
    gan = _cpu_like_gan(get_preset('tiny', gan_ema=0.))
    assert gan.generator_ema is None and gan.sampler is gan.generator


def test_r1_is_added_on_its_steps_and_zero_for_a_flat_d():
    p = get_preset('tiny', gan_r1=2.0)
    gan = _cpu_like_gan(p)
    loss = CondGANLoss.from_preset(gan, p)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, gan.sample(4)
    torch.manual_seed(3)
    for _ in range(40):  # lazy R1: drawn on about one D step in R1_EVERY
        pred = gan(real, z)
        total = loss(pred, z)
        if gan.r1_real is not None: break
    assert gan.r1_real is not None
    torch.testing.assert_close(total, loss.d_loss + p.gan_r1 / 2 * R1_EVERY * loss.r1_term)
    assert loss.r1_term > 0 and loss.r1 == p.gan_r1  # the weight is the loss's own option, from the preset in one place
    flat = torch.zeros(4, 1) + 0 * gan.r1_real.sum()
    from animestyle.gan import r1_penalty
    assert r1_penalty([flat], gan.r1_real) == 0


def test_projection_d_sees_the_codes_of_real_images():
    gan = _cpu_like_gan()
    assert gan.conditional
    seen = []
    orig = gan.critic.forward
    gan.critic.forward = lambda x, cond=None: (seen.append(cond), orig(x, cond))[1]
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, gan.sample(4)
    gan(real, z)
    k = P.d_style + P.d_content
    torch.testing.assert_close(seen[0], gan.condition(real))  # real images: their codes as S and Enc read them
    torch.testing.assert_close(seen[1], z[:, :k])             # generated images: the codes they were made from


def test_content_prior_draws_u_and_v_from_the_same_image():
    sb, cb = torch.randn(7, P.d_style), torch.randn(7, P.d_content)
    z = gan_mod.sample_codes(50, P, torch.Generator().manual_seed(0), style_bank=sb, content_bank=cb)
    u, v, _ = gan_mod.split_code(z, P)
    i = (u[:, None] == sb[None]).all(-1).float().argmax(1)
    torch.testing.assert_close(v, cb[i])
    with pytest.raises(GANError, match='same images'):
        gan_mod.sample_codes(2, P, style_bank=sb, content_bank=cb[:3])


class _NoiseG(torch.nn.Module):
    "A generator that ignores its code: uniform noise in Lab's range."
    n_in, image_size = P.code_dim, P.image_size
    def __init__(self): super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
    def forward(self, z): return torch.rand(len(z), 3, P.image_size, P.image_size) * 2 - 1 + 0 * self.w


def _trained_judge(run):
    from animestyle.judge import train_judge
    return train_judge(run, epochs=30, bs=16, force=True, device="cpu")


def test_the_judge_gives_noise_chance_and_never_enters_a_gan_loss(tmp_path, monkeypatch):
    from animestyle import judge as judge_mod
    run = RunDir(tmp_path / 'run', P)
    fitting, calls = [False], []
    for name in ('forward', 'features'):
        orig = getattr(judge_mod.Judge, name)
        def spy(self, x, _orig=orig): calls.append(fitting[0]); return _orig(self, x)
        monkeypatch.setattr(judge_mod.Judge, name, spy)
    fit = train_mod.distributed_fit
    def fit_spy(learn, *a, **k):
        fitting[0] = True
        try: return fit(learn, *a, **k)
        finally: fitting[0] = False
    monkeypatch.setattr(train_mod, 'distributed_fit', fit_spy)
    out = train_gan(run, epochs=1, device='cpu', conditions=(*_conditions(), None))
    assert calls and not any(calls)  # the judge read images, but never while G and D were training
    for k in ('judge_style_fidelity', 'judge_content_recovery', 'row_consistency', 'column_consistency',
              'judge_real_artist', 'judge_real_character', 'judge_fd', 'judge_fd_floor'):
        assert k in out.metrics, k
    # noise: chance, whatever the judge
    judge = _trained_judge(run)
    noise = CondGAN(_NoiseG(), build_critic(P), *_conditions(P), P)
    from animestyle.data.loaders import prepare_data
    real = RealFeatures(noise, prepare_data(run), judge=judge)
    noise.style_bank, noise.content_bank = real.banks(P)
    m = judge_gan(noise, judge, real)
    A, C = real.n_artists, real.n_characters
    assert abs(m['judge_style_fidelity'] - 1 / A) < 2.5 / A ** 0.5 / 16 ** 0.5 + 0.05, m['judge_style_fidelity']
    assert abs(m['judge_content_recovery'] - 1 / C) < 2.5 / C ** 0.5 / 16 ** 0.5 + 0.05, m['judge_content_recovery']
    assert m['judge_fd'] > 3 * m['judge_fd_floor']


class _OracleG(torch.nn.Module):
    "A generator that returns a real training image of the artist whose mean style code is nearest its u."
    def __init__(self, real, cache):
        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
        from animestyle.core import rgb_to_lab
        self.u_a = real.artist_styles()
        self.lab = {a: rgb_to_lab(torch.from_numpy(np.asarray(cache.images[real.idx[real.train & (real.artist == a)]])).permute(0, 3, 1, 2).contiguous())
                    for a in range(real.n_artists)}
        self.n_in, self.image_size = P.code_dim, P.image_size
    def forward(self, z):
        a = torch.cdist(z[:, :P.d_style], self.u_a).argmin(1)
        return torch.stack([self.lab[int(i)][torch.randint(len(self.lab[int(i)]), ())] for i in a]) + 0 * self.w


def test_judge_gan_credits_a_generator_that_draws_the_right_artist(tmp_path):
    from animestyle.data.loaders import prepare_data
    run = RunDir(tmp_path / 'run', P)
    cache = prepare_data(run)
    judge = _trained_judge(run)
    probe = CondGAN(_NoiseG(), build_critic(P), *_conditions(P), P)
    real = RealFeatures(probe, cache, judge=judge)
    oracle = CondGAN(_OracleG(real, cache), build_critic(P), *_conditions(P), P)
    oracle.style_bank, oracle.content_bank = real.banks(P)
    m = judge_gan(oracle, judge, real)
    from animestyle.judge import judge_scores
    on_train = judge_scores(judge, cache, real.idx[real.train])['artist_id']
    # the artist asked for is the artist drawn: the judge's score is its own accuracy on those training images
    assert abs(m['judge_style_fidelity'] - on_train) < 0.15, (m['judge_style_fidelity'], on_train)
    assert m['judge_style_fidelity'] > 2 / real.n_artists, (m['judge_style_fidelity'], on_train)


# ---- D's artist head (ADC-GAN, `gan_artist`): trained with D on the collection's artist labels ----
from animestyle.gan import artist_d_loss, artist_g_loss
from animestyle.core import PresetError

PA = get_preset('tiny', gan_artist=1.)


def test_the_artist_head_is_refused_where_it_cannot_work():
    with pytest.raises(PresetError, match="gan_artist .* needs gan_disc = 'projection' and gan_style_prior = 'data'"):
        get_preset('tiny', gan_artist=1., gan_style_prior='normal', gan_content_prior='normal')
    with pytest.raises(GANError, match='needs the collection.s artists'): build_critic(PA)
    with pytest.raises(GANError, match='needs a D with an artist head'): CondGANLoss(_cpu_like_gan(), 0., 0., artist=1.)


def test_adc_losses_put_real_art_in_class_k_and_g_s_art_in_class_k_plus_K():
    K, y = 4, torch.tensor([0, 3])
    real_side, fake_side = torch.full((2, 2 * K), -9.), torch.full((2, 2 * K), -9.)
    real_side[range(2), y] = 9.; fake_side[range(2), y + K] = 9.
    assert artist_d_loss(real_side, fake_side, y, y) < 1e-3  # D reads both sides right
    assert artist_d_loss(fake_side, real_side, y, y) > 30  # and is punished for swapping them
    # G gains when D takes its image for a real one of the artist it was asked for, and loses when D sees it was G's
    assert artist_g_loss(real_side, y) < -15 < 15 < artist_g_loss(fake_side, y)


def test_codes_come_with_the_artist_of_the_image_their_style_was_read_from():
    gan = CondGAN.from_preset(build_generator(PA), build_critic(PA, 3), *_conditions(PA), PA)
    gan.style_bank = torch.randn(30, PA.d_style); gan.content_bank = torch.randn(30, PA.d_content)
    gan.artist_bank = torch.arange(30) % 3
    z, y = gan.sample(64, torch.Generator().manual_seed(0), artists=True)
    u = z[:, :PA.d_style]
    row = torch.cdist(u, gan.style_bank).argmin(1)
    assert torch.equal(gan.artist_bank[row], y) and len(set(y.tolist())) == 3
    with pytest.raises(GANError, match='must label the same images'): gan.artist_bank = torch.zeros(5, dtype=torch.long)


class _Labels(Callback):
    order = 100
    def __init__(self): self.seen = []
    def after_loss(self): self.seen.append((self.learn.loss_func.phase, [t.clone() for t in self.learn.yb]))


def test_d_learns_the_real_artists_and_g_is_graded_on_the_asked_ones():
    seed_everything(0)
    gan = CondGAN.from_preset(build_generator(PA), build_critic(PA, 2), *_conditions(PA), PA)
    gan.style_bank = torch.randn(8, PA.d_style); gan.content_bank = torch.randn(8, PA.d_content)
    gan.artist_bank = torch.tensor([0, 1] * 4)
    # two artists who differ plainly: dark images are artist 0, bright ones artist 1
    ds = [(torch.full((3, 32, 32), -0.8 if i % 2 == 0 else 0.8) + 0.05 * torch.randn(3, 32, 32), i % 2) for i in range(64)]
    dls = DataLoaders(DataLoader(ds, bs=16, shuffle=True, drop_last=True), DataLoader(ds, bs=16))
    spy = _Labels()
    learn = gan_learner(dls, gan, lr=2e-3, cbs=[spy])
    with learn.no_bar(), learn.no_logging(): learn.fit(6)
    crit = [yb for ph, yb in spy.seen if ph == 'critic']
    assert all(len(yb) == 3 for _, yb in spy.seen)  # codes, the artists asked for, the real images' artists
    assert any(yb[2].sum() not in (0, len(yb[2])) for yb in crit)  # the real labels come from the data, both artists
    with torch.no_grad():
        dark, bright = torch.full((4, 3, 32, 32), -0.8), torch.full((4, 3, 32, 32), 0.8)
        z = gan.sample(4)
        _, a_dark = gan.critic_outputs(dark, z); _, a_bright = gan.critic_outputs(bright, z)
    assert (a_dark[:, :2].argmax(1) == 0).all() and (a_bright[:, :2].argmax(1) == 1).all()  # D's head has learned who drew what
    assert 'd_artist' in learn.recorder.metric_names and 'g_artist' in learn.recorder.metric_names


def test_a_gan_with_an_artist_head_saves_and_loads(tmp_path):
    run = RunDir(tmp_path / 'run', PA)
    out = train_gan(run, epochs=1, evaluate=False, device='cpu', conditions=(*_conditions(PA), None))
    assert out.D.artist is not None and out.D.artist.out_features == 2 * 6  # the tiny synthetic collection's 6 artists
    again = load_gan(run, 'cpu')
    assert all(torch.equal(a, b) for a, b in zip(again.D.state_dict().values(), out.D.state_dict().values()))


# ---- spectral norm on D's layers (SNGAN, `gan_sn`) ----
PS = get_preset('tiny', gan_artist=1., gan_sn=True, gan_r1=0.1)


def test_spectral_norm_is_refused_on_the_consortium():
    with pytest.raises(PresetError, match="gan_sn needs gan_disc = 'projection'"):
        get_preset('tiny', gan_sn=True, gan_disc='consortium')


def test_a_gan_with_spectral_norm_trains_with_r1_saves_and_loads(tmp_path):
    run = RunDir(tmp_path / 'run', PS)
    out = train_gan(run, epochs=1, evaluate=False, device='cpu', conditions=(*_conditions(PS), None))
    assert out.D.sn and not any(isinstance(m, torch.nn.BatchNorm2d) for m in out.D.modules())
    # R1's double backward ran through the normalisation, and every layer but the two heads is still of spectral norm one
    norms = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item() for n, m in out.D.eval().named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and n not in ('embed', 'artist')]
    assert len(norms) == len(PS.disc_features) + 1 and all(abs(s - 1) < 0.05 for s in norms), norms
    again = load_gan(run, 'cpu')
    assert again.D.sn
    assert all(torch.equal(a, b) for a, b in zip(again.D.state_dict().values(), out.D.state_dict().values()))


# ---- D's self-supervised redrawing (FastGAN, `gan_ssd`) ----
PR = get_preset('tiny', gan_ssd=1.)


def test_redrawing_is_refused_where_it_cannot_work():
    with pytest.raises(PresetError, match="gan_ssd .* needs gan_disc = 'projection'"):
        get_preset('tiny', gan_ssd=1., gan_disc='consortium')
    with pytest.raises(GANError, match='needs a D with a decoder'): CondGANLoss(_cpu_like_gan(), 0., 0., ssd=1.)


def test_d_redraws_the_real_images_from_its_own_map():
    seed_everything(0)
    gan = _cpu_like_gan(PR).train()
    gan.r1_every = 0
    loss = CondGANLoss.from_preset(gan, PR)
    real, z = torch.rand(4, 3, 32, 32) * 2 - 1, gan.sample(4)
    gan.switch(False)
    loss(gan(real, z), z).backward()
    redrawn, target = gan.redrawn
    assert torch.equal(target, torch.nn.functional.avg_pool2d(real, 2)) and redrawn.shape == target.shape  # the real images, not G's
    assert loss.d_ssd is not None and loss.d_ssd > 0
    # the L1 trains the decoder and D's layers up to the map it reads; the layers after it only through eq. 5
    D = gan.critic
    D.zero_grad(); gan(real, z)
    F1 = torch.nn.functional.l1_loss(*gan.redrawn); F1.backward()
    assert D.body[0].weight.grad.abs().sum() > 0 and all(q.grad.abs().sum() > 0 for q in D.decoder.parameters())
    assert D.out.weight.grad is None or D.out.weight.grad.abs().sum() == 0


def test_a_gan_that_redraws_trains_and_loads(tmp_path):
    run = RunDir(tmp_path / 'run', PR)
    out = train_gan(run, epochs=1, evaluate=False, device='cpu', conditions=(*_conditions(PR), None))
    assert out.D.decoder is not None
    again = load_gan(run, 'cpu')
    assert all(torch.equal(a, b) for a, b in zip(again.D.state_dict().values(), out.D.state_dict().values()))
