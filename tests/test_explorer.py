"The explorer's widget logic in Python: every control produces a new image, uploads never raise, the app command refuses bad runs."
import io

import numpy as np
import pytest
import torch
from PIL import Image

from animestyle.analysis import StyleSpace
from animestyle.explorer import Explorer, ExplorerError, explore, OFFLINE_TEMPLATE, offline_template
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
    cmd = explore(str(run.path), port=8999, dry_run=True)
    assert '--Voila.ip=127.0.0.1' in cmd and '--port=8999' in cmd and '--template=animestyle' in cmd
    assert (run.path/'report'/'explorer_app.ipynb').exists()
    t = offline_template(tmp_path)
    assert (t/'index.html.j2').read_text() == OFFLINE_TEMPLATE and "extends 'lab/index.html.j2'" in OFFLINE_TEMPLATE
