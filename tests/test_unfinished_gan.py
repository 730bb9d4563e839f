"A run stopped mid-GAN (a checkpoint, no weights): explore, report and measure-gan use its last checkpoint, say so, and write nothing into gan/."
import os, shutil
from pathlib import Path

import pytest

from animestyle.core import RunDir
from animestyle.analysis import StyleSpace, StyleSpaceError, figure2
from animestyle.gan_train import GANError, load_gan, train_gan
from test_analysis import trained_tiny_run

NOTE = 'epoch 1 of 2, training unfinished'


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "The tiny run's trained style and content stages, and a GAN stopped after its first of two epochs."
    src = trained_tiny_run()
    assert src.preset.gan_epochs == 2
    dst = tmp_path_factory.mktemp('unfinished')/'run'
    shutil.copytree(src.path, dst, ignore=shutil.ignore_patterns('gan', 'report'))
    r = RunDir(dst, create=False)
    train_gan(r, epochs=1)
    for f in ('weights.safetensors', 'metrics.json'): (r.gan/f).unlink()
    assert (r.gan/'checkpoint.safetensors').is_file()
    return r


def _listing(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob('*')}


def test_the_stage_loads_from_its_checkpoint_and_says_so(run):
    with pytest.raises(GANError, match='no trained GAN'): load_gan(run)   # only when asked for
    stage = load_gan(run, unfinished=True)
    assert stage.unfinished and stage.epoch == 1 and stage.epochs == 2 and stage.note == NOTE
    assert load_gan(trained_tiny_run()).note == ''
    ss = StyleSpace.from_run(run.path, device='cpu')
    assert ss.note == NOTE and NOTE in repr(ss)
    fig = figure2(ss, path=run.path.parent/'fig2.png')
    assert any(t.get_text() == NOTE for t in fig.texts)


def test_a_run_without_any_gan_file_is_still_refused(run, tmp_path):
    bare = tmp_path/'bare'
    shutil.copytree(run.path, bare, ignore=shutil.ignore_patterns('checkpoint.safetensors'))
    with pytest.raises(StyleSpaceError, match='no trained gan stage'): StyleSpace.from_run(bare, device='cpu')


def test_report_command_on_an_unfinished_run(run, capsys):
    from animestyle.cli import main
    gan_before = _listing(run.gan)
    assert main(['report', '--run', str(run.path)]) == 0
    page = (run.path/'report'/'report.html').read_text()
    assert f'GAN: {NOTE}' in page and page.index(NOTE) < page.index('id="summary"')
    assert _listing(run.gan) == gan_before


def test_measure_gan_prints_and_writes_nothing(run, capsys):
    from animestyle.cli import main
    before = _listing(run.gan)
    assert main(['measure-gan', '--run', str(run.path)]) == 0
    out = capsys.readouterr().out
    assert 'judge_style_fidelity:' in out and NOTE in out and 'nothing written' in out
    assert _listing(run.gan) == before and not (run.gan/'metrics.json').exists()


def test_explore_on_an_unfinished_run_reads_only(run, capsys):
    from animestyle.explorer import Explorer, explore
    before = _listing(run.path)
    cmd = explore(str(run.path), port=8997, dry_run=True)
    assert '--Voila.ip=127.0.0.1' in cmd
    ex = Explorer.from_run(run.path, n_style=2, n_content=2, device='cpu')
    assert NOTE in ex.status.value and ex.widget.children[0] is ex.status
    assert _listing(run.path) == before
