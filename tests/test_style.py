"Style encoder: losses against written-out sums, the optimiser sees centres and h_d, resume, idempotence, the normalised code."
import math

import numpy as np
import pytest
import torch

from animestyle.core import RunDir, get_preset, load_checkpoint, save_checkpoint
from animestyle.style import (StyleCheckpoint, StyleModel, centre_loss, choose_d_prime, eq10_ratio, evaluate_style, fit_style,
                              load_style_encoder, nested_dropout_weights, nested_terms, pairwise_loss,
                              prefix_sq_distances, retrieval_metrics, style_learner, train_style)


def test_weights_distribution_and_bad_t():
    w = nested_dropout_weights(64, 0.9)
    assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-9)
    assert torch.allclose(w[1:] / w[:-1], torch.full((63,), 0.9, dtype=torch.float64))
    for t in (0, 1, 1.5):
        with pytest.raises(ValueError, match='strictly between 0 and 1'): nested_dropout_weights(8, t)


def test_prefix_distances_match_loop():
    a, b = torch.randn(4, 10), torch.randn(3, 10)
    loop = torch.stack([((a[:, None, :d] - b[None, :, :d]) ** 2).sum(-1) for d in range(1, 11)], -1)
    assert torch.allclose(prefix_sq_distances(a, b), loop, atol=1e-5)


def test_nested_loss_orders_dimensions():
    "Moving an early coordinate costs more than moving a late one: the suffix is dropped more often."
    D = 16
    w, h = nested_dropout_weights(D, 0.8).float(), torch.ones(D)
    base = torch.zeros(1, D)
    early, late = base.clone(), base.clone()
    early[0, 0], late[0, -1] = 1., 1.
    ls_early = nested_terms(prefix_sq_distances(early, base), w, h)[0]
    ls_late = nested_terms(prefix_sq_distances(late, base), w, h)[0]
    assert ls_early.item() > 5 * ls_late.item()
    assert math.isclose(ls_early.item(), 1.0, rel_tol=1e-5)  # every prefix sees coordinate 1
    assert math.isclose(ls_late.item(), w[-1].item(), rel_tol=1e-5)  # only the full prefix sees the last


def test_h_scales_distances():
    D = 4
    w = nested_dropout_weights(D, 0.5).float()
    sq = torch.ones(1, D)
    a = nested_terms(sq, w, torch.ones(D))[0]
    b = nested_terms(sq, w, torch.full((D,), 2.))[0]
    assert torch.allclose(b, 4 * a)


def test_centre_loss_class_size_weights():
    "Eq. 2 as written: an unequal class is weighted by |X_i|, unlike a plain batch mean."
    torch.manual_seed(0)
    z, y = torch.randn(5, 3), torch.tensor([0, 0, 0, 0, 1])
    c = torch.randn(2, 3)
    cnt = torch.tensor([4., 1.])
    N = 5
    same = sum(cnt[y[k]] * ((z[k] - c[y[k]]) ** 2).sum() for k in range(5)) / (cnt ** 2).sum()
    diff = sum(cnt[1 - y[k]] * torch.exp(-((z[k] - c[1 - y[k]]) ** 2).sum()) for k in range(5)) / (N ** 2 - (cnt ** 2).sum())
    assert torch.allclose(centre_loss(z, y, c, cnt), same + diff, atol=1e-5)
    assert not torch.allclose(centre_loss(z, y, c, cnt), centre_loss(z, y, c, torch.tensor([1., 1.])))


def test_pairwise_loss_counts_pairs():
    z = torch.tensor([[0.], [1.], [0.], [5.]])
    y = torch.tensor([0, 0, 1, 1])
    d2 = torch.cdist(z, z) ** 2
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]).bool()
    want = d2[same].sum() / 8 + torch.exp(-d2[~same]).sum() / 8
    assert torch.allclose(pairwise_loss(z, y), want)


def test_eq10_and_retrieval_on_known_codes():
    torch.manual_seed(0)
    y = torch.arange(8).repeat_interleave(50)
    noise = torch.randn(400, 6)
    assert abs(eq10_ratio(noise, y)[-1] - 0.5) < 0.05  # a code that ignores the artist
    clusters = torch.randn(8, 6)[y] * 10 + 0.1 * noise
    assert eq10_ratio(clusters, y)[-1] < 0.01
    assert retrieval_metrics(clusters, y) == dict(precision_at_1=1.0, map_at_r=1.0)
    assert retrieval_metrics(noise, y)['map_at_r'] < 0.3


def test_choose_d_prime():
    acc = np.array([0.2, 0.5, 0.90, 0.95, 0.955, 0.96])
    assert choose_d_prime(acc) == 4
    assert choose_d_prime(acc, tol=0.0) == 6


def test_bad_method():
    with pytest.raises(ValueError, match='method must be one of'): StyleModel(get_preset('tiny'), torch.ones(3), 'triplet')


# --- integration on a tiny synthetic run ------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    from animestyle.data.loaders import prepare_data
    run = RunDir(tmp_path_factory.mktemp('run') / 'r', get_preset('tiny', style_epochs=2))
    return run, prepare_data(run, workers=1)


def test_optimiser_sees_centres_and_h(tiny_run):
    run, cache = tiny_run
    learn = style_learner(run, cache, device='cpu')
    learn.create_opt()
    opt_ids = {id(q) for pg in learn.opt.param_lists for q in pg}
    assert id(learn.model.centres) in opt_ids and id(learn.model.log_h) in opt_ids
    assert learn.opt.hypers[0]['wd'] == 0
    assert learn.opt.hypers[0]['lr'] == run.preset.style_lr


def test_resume_and_idempotence(tiny_run):
    run, cache = tiny_run
    best, last = run.stage('style') / 'metric.safetensors', run.style / 'metric.last.safetensors'
    learn = style_learner(run, cache, device='cpu')
    ck = StyleCheckpoint(best, last, f'acc@{run.preset.d_style}', dict(finished=False))
    learn.fit(1, cbs=[ck])  # an interrupted run: one epoch done, resume checkpoint on disk
    assert last.exists() and not load_checkpoint(best)[1]['finished']
    assert any(k.startswith('opt.') for k in load_checkpoint(last)[0])
    first = ck.history[0]
    model, hist = fit_style(run, epochs=2, patience=5, cache=cache)
    assert len(hist) == 2 and hist[0] == first  # epoch 0 was not run again
    assert not last.exists() and load_checkpoint(best)[1]['finished']
    mtime = best.stat().st_mtime_ns
    _, again = fit_style(run, epochs=2, cache=cache)
    assert again == hist and best.stat().st_mtime_ns == mtime


def test_resume_keeps_early_stopping_state(tmp_path, monkeypatch):
    "A resumed fit counts the epochs without improvement from before the interruption, against the best score so far."
    from animestyle.data.loaders import prepare_data
    run = RunDir(tmp_path/'r', get_preset('tiny', style_epochs=10))
    cache = prepare_data(run, workers=1)
    last = run.style/'metric.last.safetensors'
    orig = StyleCheckpoint.after_epoch
    def interrupt_after_epoch_1(self):
        orig(self)
        if self.epoch == 1: raise KeyboardInterrupt
    monkeypatch.setattr(StyleCheckpoint, 'after_epoch', interrupt_after_epoch_1)
    with pytest.raises(KeyboardInterrupt): fit_style(run, cache=cache, patience=2)
    monkeypatch.setattr(StyleCheckpoint, 'after_epoch', orig)
    tensors, meta = load_checkpoint(last)
    save_checkpoint(last, tensors, dict(meta, best=2.0, best_epoch=0))  # a best no epoch can beat, one epoch ago
    _, hist = fit_style(run, cache=cache, patience=2)
    # one epoch without improvement was already behind it: the second, epoch 2, stops the run
    assert [h['epoch'] for h in hist] == [0, 1, 2]


def test_style_code_is_normalised(tiny_run):
    run, cache = tiny_run
    train_style(run, cache, epochs=2)
    code = load_style_encoder(run, device='cpu')
    p = run.preset
    tr = cache.manifest.split.values == 'train'
    from animestyle.core import rgb_to_lab
    x = rgb_to_lab(torch.from_numpy(np.array(cache.images[np.flatnonzero(tr)])).permute(0, 3, 1, 2))
    with torch.no_grad(): s = code(x)
    assert s.shape == (int(tr.sum()), p.d_style)
    assert s.mean(0).abs().max() < 1e-3 and (s.std(0) - 1).abs().max() < 1e-2
    assert not any(q.requires_grad for q in code.parameters())
    assert code.centres.shape == (cache.manifest.artist_id.nunique(), p.style_dim)


def test_data_dependent_start_puts_centres_at_artist_means(tiny_run):
    from animestyle.style import class_means, embed
    run, cache = tiny_run
    learn = style_learner(run, cache, device='cpu')
    m = learn.model
    z, y = embed(m.encoder, learn.dls.train.new(shuffle=False, drop_last=False))
    assert torch.allclose(m.centres.detach(), class_means(z, y, len(m.centres)), atol=1e-5)
    assert (z.std(0) - 1).abs().mean() < 0.5  # S starts with unit-scale codes, not a shared offset
    cold = style_learner(run, cache, device='cpu', init=False).model
    assert not torch.allclose(cold.centres.detach(), class_means(z, y, len(m.centres)), atol=1e-2)


def test_evaluate_style_without_baseline_then_with(tmp_path):
    "§6.1 from the library: the metric model alone says what it could not measure; asked for the baseline, it measures both."
    from animestyle.data.loaders import prepare_data
    run = RunDir(tmp_path/'r', get_preset('tiny', style_epochs=1))
    cache = prepare_data(run, workers=1)
    alone = evaluate_style(run, baseline=False)
    D = run.preset.style_dim
    assert set(alone['curves_every_d']) == {'acc metric', 'ratio metric'} and len(alone['curves_every_d']['acc metric']) == D
    assert alone['d_prime_baseline'] is None and 'baseline' in alone['not_measured']
    assert alone['claims']['metric beats baseline at d=1 and d=2'] is None
    assert alone['factor_correlation_max'] is not None                     # the synthetic data know their style factors
    assert not (run.style/'baseline.safetensors').exists()
    stamp = (run.style/'metrics.json').stat().st_mtime_ns
    assert evaluate_style(run, baseline=False) == alone and (run.style/'metrics.json').stat().st_mtime_ns == stamp   # current: not rewritten
    both = evaluate_style(run)
    assert {'acc baseline', 'ratio baseline'} <= set(both['curves_every_d']) and 'baseline' not in both['not_measured']
    assert both['curves_every_d']['acc metric'] == alone['curves_every_d']['acc metric']     # the same metric model, measured again
    assert set(both['models']) == {'metric', 'baseline'} and isinstance(both['claims']['metric beats baseline at d=1 and d=2'], bool)
    # nearest-centre accuracy recomputed by hand at d_style from the saved model
    model, _ = fit_style(run, cache=cache)
    from animestyle.style import test_codes
    z, y = test_codes(model, cache)
    ds = run.preset.d_style
    acc = (model.cpu().scores(z)[..., ds - 1].argmax(1) == y).float().mean().item()
    assert abs(both['curves_every_d']['acc metric'][ds - 1] - acc) < 1e-4
