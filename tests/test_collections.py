"""A collection kept the way people keep one, end to end from the command line: the committed fixture (a folder per
artist of face crops, a stray metadata file and a README beside them, one artist with too few works) through
`animestyle pipeline`, the run remembering its data and options, and §6.1 measured on it."""
import hashlib, json, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animestyle.core import load_checkpoint

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE/'fixtures'))
from make_collection import ARTISTS, COLLECTION, make_collection  # noqa: E402

CLI = str(Path(sys.executable).parent/'animestyle')
ENV = {**os.environ, 'ANIMESTYLE_PRESET': 'tiny'}
KEPT = sorted(a for a, n in ARTISTS.items() if n >= 50)


def files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*') if p.is_file())


def test_fixture_is_what_the_generator_makes(tmp_path):
    "The committed fixture is the generator's output: the same files, the same pictures (up to the encoders' rounding)."
    fresh = make_collection(tmp_path/'collection')
    assert files(fresh) == files(COLLECTION)
    for rel in files(COLLECTION):
        a, b = COLLECTION/rel, fresh/rel
        if a.suffix in ('.md', '.json'): assert a.read_text() == b.read_text(); continue
        x, y = (np.asarray(Image.open(p).convert('RGB'), np.int16) for p in (a, b))
        assert x.shape == y.shape and np.abs(x - y).mean() < 0.5, rel
    assert {p.name for p in COLLECTION.iterdir() if p.is_file()} == {'README.md', 'collection.json'}
    assert {a: len(list((COLLECTION/a).iterdir())) for a in ARTISTS} == ARTISTS


def cli(*args, ok=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=1200)
    assert (r.returncode == 0) == ok, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope='module')
def piped(tmp_path_factory):
    "`prepare` with the collection's options, then the whole pipeline on the same run: (run folder, meta.json after prepare, pipeline output)."
    run = tmp_path_factory.mktemp('coll')/'run'
    first = cli('prepare', '--run', run, '--data', COLLECTION, ok=False)          # a new user forgets --already-cropped
    assert not run.exists()                                                       # the failed command left no run folder
    cli('prepare', '--run', run, '--data', COLLECTION, '--already-cropped')
    meta = (run/'data'/'meta.json').read_bytes()
    out = cli('pipeline', '--preset', 'tiny', '--run', run, '--data', COLLECTION, '--already-cropped').stdout
    return run, meta, out, first


def test_no_face_error_says_what_to_do(piped):
    err = piped[3].stderr
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
    n = sum(ARTISTS.values())
    assert f'no face in {n} of {n} images' in err and 'add --already-cropped' in err


def test_pipeline_runs_through_to_the_report(piped):
    run, _, out, _ = piped
    assert (run/'report'/'report.html').is_file() and 'report:' in out
    # what each stage cost: the style stage fits two models (metric and softmax), the GAN stage the judge and G and D
    assert re.search(r'\[style\] done in \d+s \([\d.]+ TFLOP of training steps: [\d,]+ images in 2 fits\)', out), out
    assert re.search(r'\[gan\] done in \d+s \([\d.]+ TFLOP of training steps: [\d,]+ images in 2 fits\)', out), out
    assert re.search(r'^stages: prepare \d+ s, style \d+ s [\d.]+ TFLOP, content \d+ s [\d.]+ TFLOP, gan \d+ s [\d.]+ TFLOP, report \d+ s; training [\d.]+ TFLOP in all$', out, re.M), out
    meta = json.loads((run/'data'/'meta.json').read_text())
    assert meta['skipped'] == {'not in an artist folder': 2, 'artist with fewer than 50 works': ARTISTS['sketchbook']}
    assert meta['key']['kind'] == 'folder' and meta['key']['already_cropped'] is True
    assert json.loads((run/'config.json').read_text())['data']['already_cropped'] is True
    # the content stage measures what notebook 06 shows (pruning curve, probes), so the report can mark §4's claims
    c = json.loads((run/'content'/'metrics.json').read_text())
    assert c['summary']['artist_chance'] == pytest.approx(1 / len(KEPT)) and (run/'content'/'pruning.png').is_file()
    assert re.search(r'content code says little of the artist.*?</td><td>[\d.]+% from content, [\d.]+% from style', (run/'report'/'report.html').read_text(), re.S)


def test_style_metrics_hold_both_models_curves(piped):
    run = piped[0]
    m = json.loads((run/'style'/'metrics.json').read_text())
    D = m['D']
    for k in ('acc metric', 'acc baseline', 'ratio metric', 'ratio baseline'):
        v = np.array(m['curves_every_d'][k])
        assert len(v) == D and np.isfinite(v).all(), k
    assert m['n_artists'] == len(KEPT) and m['chance'] == pytest.approx(1 / len(KEPT))
    assert m['data']['test'] == 10 * len(KEPT)                                    # §5.1: at least 10 per artist
    assert set(m['claims'].values()) <= {True, False} and 1 <= m['d_prime'] <= D
    assert m['factor_correlation_max'] is None and 'factor_correlation_max' in m['not_measured']
    assert Image.open(run/'style'/'figure1.png').size[0] > 500
    assert 'held-out accuracy at d = 1, 2' in piped[2]


def test_every_stage_learned_the_collection(piped):
    "Each trained model has the collection's artists, not the synthetic default's; the cache is the one `prepare` built."
    run, meta_after_prepare, _, _ = piped
    assert (run/'data'/'meta.json').read_bytes() == meta_after_prepare
    n = len(KEPT)
    assert load_checkpoint(run/'style'/'metric.safetensors')[0]['centres'].shape[0] == n
    assert load_checkpoint(run/'style'/'baseline.safetensors')[0]['classifier.weight'].shape[0] == n
    assert load_checkpoint(run/'style'/'style.safetensors')[1]['n_artists'] == n
    n_train = sum(min(ARTISTS[a], 52) - 10 for a in KEPT)
    assert load_checkpoint(run/'gan'/'weights.safetensors')[0]['prior.style'].shape[0] == n_train
    assert json.loads((run/'gan'/'metrics.json').read_text())['style_chance'] == pytest.approx(1 / n)
    assert (run/'content'/'vae.safetensors').is_file()


def test_later_commands_keep_the_run_s_data(piped):
    run = piped[0]
    before = hashlib.sha1((run/'data'/'images.u8').read_bytes()).hexdigest()
    r = cli('train-style', '--run', run, '--min-per-artist', '5', ok=False)
    assert r.returncode == 2 and 'min_per_artist=50' in r.stderr and 'would replace them' in r.stderr
    r = cli('train-content', '--run', run, '--data', 'synthetic', ok=False)
    assert 'would replace them' in r.stderr
    out = cli('train-style', '--run', run).stdout                               # no --data, no flags: the run's own
    assert '[style] done' in out and hashlib.sha1((run/'data'/'images.u8').read_bytes()).hexdigest() == before
