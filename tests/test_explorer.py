"The explorer's widget logic in Python: every control produces a new image, uploads never raise, the app command refuses bad runs."
import io, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from animestyle.analysis import StyleSpace
from animestyle.explorer import Explorer, ExplorerError, explore, OFFLINE_TEMPLATE, offline_template, dimension_labels, run_labels
from test_analysis import trained_tiny_run


@pytest.fixture(scope='module')
def ss(): return StyleSpace.from_run(trained_tiny_run(), device='cpu')


@pytest.fixture
def ex(ss): return Explorer(ss, n_style=4, n_content=3, size=64)


def test_layout(ex, ss):
    assert len(ex.style_sliders) == 4 and len(ex.content_sliders) == 3
    assert list(ex.artist.options)[1:] == ss.artists
    assert ex.image.value[:4] == b'\x89PNG' and ex.n_renders == 1
    assert 'animestyle-explorer' in ex.widget._dom_classes


@pytest.mark.parametrize('part', ['style', 'content'])
def test_slider_renders_a_new_image(ex, part):
    sliders = getattr(ex, f'{part}_sliders')
    before, n = ex.image.value, ex.n_renders
    sliders[1].value = 3.5 if sliders[1].value < 0 else -3.5
    assert ex.n_renders == n + 1 and ex.image.value != before
    assert getattr(ex, part)[1].item() == pytest.approx(sliders[1].value)


def test_artist_sets_the_whole_style_in_one_render(ex, ss):
    n = ex.n_renders
    ex.artist.value = ss.artists[3]
    assert ex.n_renders == n + 1
    torch.testing.assert_close(ex.style, ss.artist_style(ss.artists[3]))   # hidden dimensions too, unclamped
    assert ex.style_sliders[0].value == pytest.approx(float(ex.style[0].clamp(-5, 5)), abs=1e-6)
    ex.artist.value = '(random style)'
    assert not torch.allclose(ex.style, ss.artist_style(ss.artists[3]))
    assert ss.style_bank is not None  # tiny trains its GAN on training images' style codes
    assert (ss.style_bank == ex.style).all(1).any()  # so a random style is one of them


def test_new_noise_changes_only_the_noise(ex):
    u, v, w, before = ex.style.clone(), ex.content.clone(), ex.noise.clone(), ex.image.value
    ex.noise_button.click()
    assert torch.equal(ex.style, u) and torch.equal(ex.content, v) and not torch.equal(ex.noise, w)
    assert ex.image.value != before


def _upload(ex, name, data):
    ex._on_upload(dict(new=({'name': name, 'type': '', 'size': len(data), 'content': memoryview(data)},)))


def test_upload_sets_content_or_style(ex, ss):
    buf = io.BytesIO(); Image.fromarray(np.asarray(ss.cache.images[5])).save(buf, format='png')
    _upload(ex, 'face.png', buf.getvalue())
    torch.testing.assert_close(ex.content, ss.encode_content(ss.cache.images[5])[0], atol=1e-4, rtol=1e-4)
    ex.upload_as.value = 'style'
    _upload(ex, 'face.png', buf.getvalue())
    torch.testing.assert_close(ex.style, ss.encode_style(ss.cache.images[5])[0], atol=1e-4, rtol=1e-4)
    assert 'face.png' in ex.message.value


@pytest.mark.parametrize('data', [b'', b'hello', b'%PDF-1.4\n%\xe2\xe3', b'\x89PNG\r\n\x1a\n truncated'])
def test_upload_of_a_non_image_is_a_message_not_a_traceback(ex, data):
    u, v, before, n = ex.style.clone(), ex.content.clone(), ex.image.value, ex.n_renders
    _upload(ex, 'notes.pdf', data)
    assert 'notes.pdf is not an image' in ex.message.value
    assert torch.equal(ex.style, u) and torch.equal(ex.content, v) and ex.image.value == before and ex.n_renders == n


def test_bad_settings(ss):
    with pytest.raises(ExplorerError, match='n_style must be'): Explorer(ss, n_style=0)
    with pytest.raises(ExplorerError, match='n_content must be'): Explorer(ss, n_content=ss.d_content + 1)


def test_explore_command(tmp_path, capsys):
    from animestyle.cli import main
    run = trained_tiny_run()
    assert main(['explore', '--run', str(tmp_path/'none')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('animestyle: error: ') and err.count('\n') == 1
    before = {p.relative_to(run.path): p.stat().st_mtime_ns for p in run.path.rglob('*')}
    cmd = explore(str(run.path), port=8999, dry_run=True)
    assert '--Voila.ip=127.0.0.1' in cmd and '--port=8999' in cmd and '--template=animestyle' in cmd
    # the explorer only reads the run: its app notebook and template live outside it
    assert Path(cmd[3]).name == 'explorer_app.ipynb' and Path(cmd[3]).is_file() and not Path(cmd[3]).is_relative_to(run.path)
    assert {p.relative_to(run.path): p.stat().st_mtime_ns for p in run.path.rglob('*')} == before
    shutil.rmtree(Path(cmd[3]).parent)
    t = offline_template(tmp_path)
    assert (t/'index.html.j2').read_text() == OFFLINE_TEMPLATE and "extends 'lab/index.html.j2'" in OFFLINE_TEMPLATE


def test_style_sliders_name_the_factor_they_drive_where_it_is_clear(ss):
    "Each style slider keeps its number and adds the factor the run's interpretation measured, when one clearly leads."
    table = pd.DataFrame({'factor': ['hair_gloss', 'line_weight', 'nose'], 'strength': [1.63, 0.30, 0.52],
                          'runner_up': ['eye_sharpness (0.88)', 'shading (0.30)', 'hair_gloss (0.51)']},
                         index=pd.Index([1, 2, 3], name='dimension'))
    assert dimension_labels(table) == {1: 'hair_gloss'}
    ex = Explorer(ss, n_style=3, n_content=1, size=32, labels=dimension_labels(table))
    assert [s.description for s in ex.style_sliders] == ['style 1: hair_gloss', 'style 2', 'style 3']


def test_sliders_read_the_runs_interpretation_csv(ss, tmp_path):
    "The labels come from report/interpretation.csv, which `animestyle report` writes; without it the sliders are numbered only."
    run = ss.run
    f = run.path/'report'/'interpretation.csv'
    saved = f.read_bytes() if f.exists() else None
    try:
        f.parent.mkdir(exist_ok=True)
        pd.DataFrame({'factor': ['line_weight', 'nose'], 'strength': [0.9, 0.2], 'direction': ['+', '-'], 'real_corr': [0.9, 0.1],
                      'judge_heldout': [0.8, 0.5], 'runner_up': ['contrast (0.22)', 'blush (0.19)']},
                     index=pd.Index([1, 2], name='dimension')).to_csv(f)
        assert run_labels(ss) == {1: 'line_weight'}
        assert Explorer(ss, n_style=2, n_content=1, size=32).style_sliders[0].description == 'style 1: line_weight'
        f.unlink()
        assert [s.description for s in Explorer(ss, n_style=2, n_content=1, size=32).style_sliders] == ['style 1', 'style 2']
    finally:
        if saved is not None: f.write_bytes(saved)
