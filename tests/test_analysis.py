"StyleSpace on a trained tiny-preset run: every input form, generation, transfer, retrieval, clear errors, figures and the report."
import fcntl, os, shutil
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import numpy as np
import pytest
import torch
from PIL import Image

from animestyle.core import RunDir, get_preset, rgb_to_lab
from animestyle.analysis import (StyleSpace, StyleSpaceError, figure2, figure3, figure6, figure7, figure_dimension,
                                 interpret_dimensions, interpretation_table, style_factor_targets,
                                 bilinear_styles)
from animestyle.report import write_report


def trained_tiny_run() -> RunDir:
    "The tiny-preset run of this test session, trained once through the library's stage functions (shared by all test files)."
    from animestyle.data.loaders import prepare_data
    from animestyle.style import train_style
    from animestyle.content import train_content
    from animestyle.gan_train import train_gan
    root = Path(os.environ['ANIMESTYLE_RUNS'])
    root.mkdir(parents=True, exist_ok=True)
    with open(root/'.trained-tiny.lock', 'a+') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run = RunDir(root/'notebooks-tiny', get_preset('tiny'))
        done = run.path/'.trained-by-tests'
        if not done.exists():
            for stage in (prepare_data, train_style, train_content, train_gan): stage(run)
            done.touch()
    return run


@pytest.fixture(scope='module')
def run(): return trained_tiny_run()


@pytest.fixture(scope='module')
def ss(run): return StyleSpace.from_run(run.path, device='cpu')


def test_from_run_sizes(ss, run):
    p = run.preset
    assert (ss.d_style, ss.d_content, ss.d_noise) == (p.d_style, p.d_content, p.code_dim - p.d_style - p.d_content)
    assert ss.artists == ss.cache.artists and len(ss.centres) == len(ss.artists)
    assert not any(q.requires_grad for q in ss.G.parameters())


def test_every_input_form_gives_the_same_code(ss, tmp_path):
    arr = np.asarray(ss.cache.images[:2])
    paths = []
    for i, a in enumerate(arr):
        paths.append(tmp_path/f'{i}.png'); Image.fromarray(a).save(paths[-1])
    ref = ss.encode_style(arr)
    lab = rgb_to_lab(torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2))
    for form in (paths, [str(p) for p in paths], [Image.open(p) for p in paths], torch.from_numpy(np.array(arr)), lab):
        torch.testing.assert_close(ss.encode_style(form), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ss.encode_style(paths[0]), ref[:1], atol=1e-4, rtol=1e-4)
    big = Image.fromarray(arr[0]).resize((3*ss.image_size, 3*ss.image_size))
    assert ss.encode_content(big).shape == (1, ss.d_content)


def test_style_codes_are_normalised_with_training_statistics(ss):
    tr = np.flatnonzero(ss.cache.manifest.split.values == 'train')
    u = ss.encode_style(ss.cache.images[tr])
    assert u.mean(0).abs().mean() < 0.3 and 0.6 < u.std(0).mean() < 1.4


def test_generate(ss):
    z = ss.sample(3, seed=0)
    a = ss.generate(z.style, z.content, z.noise)
    assert a.shape == (3, 3, ss.image_size, ss.image_size) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(ss.generate(z.style, z.content, seed=5), ss.generate(z.style, z.content, seed=5))
    assert (ss.generate(z.style, z.content, seed=5) - ss.generate(z.style, z.content, seed=6)).abs().max() > 0
    one = ss.generate(z.style[0], z.content, z.noise)      # one style shared by three contents
    torch.testing.assert_close(one[0], a[0])
    assert (ss.generate(z.style * -1, z.content, z.noise) - a).abs().mean() > 1e-3
    with pytest.raises(StyleSpaceError, match='style codes need'): ss.generate(torch.zeros(ss.d_style + 1), z.content)
    with pytest.raises(StyleSpaceError, match='batch sizes do not match'): ss.generate(z.style[:2], z.content)


def test_reconstruct_and_transfer(ss):
    x = np.asarray(ss.cache.images[:4]); y = np.asarray(ss.cache.images[-4:])
    torch.testing.assert_close(ss.transfer(x, x), ss.reconstruct(x))
    want = ss.generate(ss.encode_style(y), ss.encode_content(x), 0)
    torch.testing.assert_close(ss.transfer(x, y), want)
    assert (ss.transfer(x, y) - ss.transfer(y, x)).abs().mean() > 1e-4


def test_artists_and_retrieval(ss):
    name = ss.artists[2]
    u = ss.artist_style(name)
    torch.testing.assert_close(u, ss.artist_style(2))
    d = ss.d_style
    torch.testing.assert_close(u, ((ss.centres[2] - ss.style_code.mean[:d]) / ss.style_code.std[:d]).cpu())
    x = np.asarray(ss.cache.images[:5])
    nn = ss.nearest_artists(x, k=3)
    assert len(nn) == 15 and set(nn.artist) <= set(ss.artists)
    raw = ss.style_features(x, raw=True)[:, :ss.d_style]
    best = torch.cdist(raw, ss.centres).argmin(1)
    assert nn[nn['rank'] == 1].artist.tolist() == [ss.artists[i] for i in best]
    assert (nn.groupby('image').distance.apply(lambda d: d.is_monotonic_increasing)).all()
    with pytest.raises(StyleSpaceError, match='unknown artist'): ss.artist_style('nobody')


def test_bad_input_is_one_clear_error(ss, tmp_path):
    txt = tmp_path/'notes.png'; txt.write_text('not a picture')
    with pytest.raises(StyleSpaceError, match='is not an image'): ss.encode_style(txt)
    with pytest.raises(StyleSpaceError, match='no image file'): ss.encode_style(tmp_path/'missing.png')
    with pytest.raises(StyleSpaceError, match='uint8 images must be'): ss.encode_style(np.zeros((2, 8, 8), np.uint8))
    assert issubclass(StyleSpaceError, ValueError)


def test_missing_or_incompatible_run(run, tmp_path):
    with pytest.raises(StyleSpaceError, match='no run at'): StyleSpace.from_run(tmp_path/'nowhere')
    part = tmp_path/'part'
    shutil.copytree(run.path, part, ignore=shutil.ignore_patterns('gan', 'report'))
    with pytest.raises(StyleSpaceError, match=r'no trained gan stage.*train-gan') as e: StyleSpace.from_run(part)
    assert '\n' not in str(e.value)
    bad = tmp_path/'bad'
    shutil.copytree(run.path, bad, ignore=shutil.ignore_patterns('report'))
    for f in (bad/'gan').glob('*.safetensors'): f.write_bytes(b'\x80\x04 a pickle, not weights')
    with pytest.raises(StyleSpaceError, match='gan stage cannot be loaded'): StyleSpace.from_run(bad)


def test_bilinear_corners_and_centre():
    c = torch.randn(4, 5)
    g = bilinear_styles(c, 3)
    for i, j in zip((0, 2, 6, 8), range(4)): torch.testing.assert_close(g[i], c[j])
    torch.testing.assert_close(g[4], c.mean(0))


def test_figures_are_written(ss, tmp_path):
    import matplotlib.figure
    for name, f in (('f2', lambda p: figure2(ss, n_styles=3, n_contents=2, path=p)), ('f3', lambda p: figure3(ss, n=3, path=p)),
                    ('f4', lambda p: figure_dimension(ss, 2, n_codes=2, path=p)), ('f6', lambda p: figure6(ss, path=p)),
                    ('f7', lambda p: figure7(ss, path=p))):
        fig = f(tmp_path/f'{name}.png')
        assert isinstance(fig, matplotlib.figure.Figure) and fig.saved_to == tmp_path/f'{name}.png'
        assert (tmp_path/f'{name}.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(StyleSpaceError, match='style dimensions are 1..'): figure_dimension(ss, ss.d_style + 1)


def test_interpretation_table(ss):
    T = style_factor_targets(ss.cache.manifest.head(50))
    assert 'line_weight' in T.columns and any(c.startswith('shading=') for c in T.columns)
    eff = interpret_dimensions(ss, dims=[1, 2], n_codes=8)
    assert set(eff.dim) == {1, 2} and eff.groupby('dim').factor.nunique().min() >= 10
    still = interpret_dimensions(ss, dims=[1], n_codes=8, amplitude=0.0)
    assert still.strength.max() < 1e-6         # no sweep, no effect: the effect comes from moving dimension k only
    tab = interpretation_table(eff)
    assert list(tab.index) == [1, 2] and (tab.strength >= 0).all()


def test_write_report(run):
    rep = write_report(run)
    page = rep.read_text()
    for name in ('figure2', 'figure3', 'figure4', 'figure5', 'figure6', 'figure7', 'interpretation'):
        assert (rep.parent/f'{name}.png').exists() and f'alt="{name}"' in page
    assert 'data:image/png;base64,' in page and 'http://' not in page and 'https://' not in page
    assert (rep.parent/'interpretation.csv').exists() and (rep.parent/'metrics.json').exists()


def test_the_report_reads_as_a_summary_then_figures_then_collapsed_metrics(run):
    "One screen of claims and targets with a mark each first, figures under titles a person reads, every metric folded away once."
    import html, re
    from animestyle.report import METRIC_NOTES, report_summary
    page = write_report(run).read_text()
    body = page[page.index('<body>'):]
    assert body.index('id="summary"') < body.index('id="figures"') < body.index('<details>') < body.index('id="metrics"') + 200
    summary = body[body.index('id="summary"'):body.index('id="figures"')]
    assert summary.count('<tr>') >= 9 and ('✔' in summary or '✗' in summary)
    assert 'style fidelity' in summary and 'content recovery' in summary and '§6.1' in summary
    heads = re.findall(r'<h3>(.*?)</h3>', body[body.index('id="figures"'):body.index('<details>')])
    assert heads and not [h for h in heads if '/' in h or h.endswith('.png')], heads
    assert "Figure 2: every artist&#x27;s style on every character" in heads
    details = body[body.index('<details>'):body.index('</details>')]
    assert '<summary>' in details and '<table>' in details
    notes = list(METRIC_NOTES.values())
    for table in details.split('<h3>')[1:]:   # in each stage's table, an explanation is written once, not once per factor or artist
        cells = [html.unescape(c) for c in re.findall(r'<td class="note">(.*?)</td>', table)]
        assert len(cells) > 3
        for note in set(notes):
            assert sum(c == note or c.startswith(note + ': ') for c in cells) <= notes.count(note), note


def test_report_summary_marks_each_target():
    from animestyle.report import report_summary
    rows = report_summary({'gan': dict(judge_style_fidelity=0.9, judge_content_recovery=0.5, row_consistency=0.8, judge_fd_ratio=4.0),
                           'report': {'transfer': dict(judge_transfer_artist=0.6, judge_transfer_artist_of_content_source=0.1)}})
    got = {r['claim'].split(':')[0]: r['ok'] for r in rows}
    assert got['style fidelity'] is True and got['content recovery'] is False and got['Figure 2 rows'] is True
    assert got["Fréchet distance in the judge's features, over its real-against-real floor"] is False
    assert got["a transfer takes the style source's artist, not the content source's"] is True
    assert [r for r in rows if 'style fidelity' in r['claim']][0]['value'].startswith('90.0%')
    unfinished = report_summary({}, note='epoch 1 of 2, training unfinished')
    assert all(r['ok'] is None for r in unfinished)
    assert 'training unfinished' in [r for r in unfinished if 'style fidelity' in r['claim']][0]['value']


def test_the_explorer_and_the_report_draw_with_gs_moving_average(ss, run):
    "StyleSpace (the report's and the explorer's networks) holds the moving average of G, not the G that trained."
    from animestyle.core import load_checkpoint
    t, _ = load_checkpoint(run.gan/'weights.safetensors')
    ema = {k[len('G_ema.'):]: v for k, v in t.items() if k.startswith('G_ema.')}
    raw = {k[len('G.'):]: v for k, v in t.items() if k.startswith('G.')}
    assert ema and any(not torch.equal(ema[k], raw[k]) for k in ema)
    sd = ss.G.state_dict()
    assert all(torch.equal(sd[k].cpu(), ema[k]) for k in ema)


def test_the_report_says_what_real_data_cannot_measure(ss):
    from animestyle.report import unmeasured
    assert unmeasured(ss) == []  # the synthetic default measures everything
    bare = StyleSpace.__new__(StyleSpace); bare.cache = type('C', (), {'manifest': ss.cache.manifest[['artist', 'artist_id', 'split']]})()
    missing = unmeasured(bare)
    assert len(missing) == 3 and any('character' in m for m in missing) and any('style factors' in m for m in missing)
