"""Bad input on the command line: every kind is one line on stderr and exit status 2, no traceback, and every
file already on disk is unchanged (hashed before and after). `CLI_FAULTS` is the table of kinds tried."""
import contextlib, hashlib, io, os, pickle, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from animestyle.cli import main
from animestyle.core import RunDir, get_preset, save_checkpoint
from animestyle.data.loaders import prepare_data

COLLECTION = Path(__file__).resolve().parent/'fixtures'/'collection'

P = get_preset('tiny')
CLI = str(Path(sys.executable).parent/'animestyle')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "Runs and files to point the commands at: a prepared run, a 'trained' one, damaged ones, odd data sources."
    w = tmp_path_factory.mktemp('world')
    fresh = RunDir(w/'fresh', P); prepare_data(fresh, workers=1)              # data only, no stage trained
    shutil.copytree(fresh.path, w/'trained')
    save_checkpoint(w/'trained'/'style'/'style.safetensors', {'w': torch.ones(2)}, {'preset': 'tiny'})
    shutil.copytree(fresh.path, w/'badjson'); (w/'badjson'/'config.json').write_text('{"preset": {"name": ')
    shutil.copytree(fresh.path, w/'oldversion'); (w/'oldversion'/'config.json').write_text('{"preset": {"name": "tiny"}}')
    shutil.copytree(fresh.path, w/'cut')
    ck = save_checkpoint(w/'cut'/'style'/'metric.safetensors', {'w': torch.ones(1000)}, {'finished': True})
    ck.write_bytes(ck.read_bytes()[:300])                                     # a checkpoint cut short
    shutil.copytree(fresh.path, w/'pickled')
    class Evil:
        def __reduce__(self): return (Path.touch, (w/'pwned',))
    (w/'pickled'/'style').mkdir(); (w/'pickled'/'style'/'metric.safetensors').write_bytes(pickle.dumps({'w': Evil()}))
    shutil.copytree(fresh.path, w/'badcache')
    with open(w/'badcache'/'data'/'images.u8', 'r+b') as f: f.truncate(1000)
    (w/'empty').mkdir()
    (w/'junk'/'someone').mkdir(parents=True); (w/'junk'/'someone'/'x.png').write_text('not a picture')
    (w/'notes.txt').write_text('not metadata')
    (w/'photos').mkdir(); (w/'photos'/'cat.jpg').write_bytes(b'\xff\xd8 a holiday picture')
    shutil.copytree(COLLECTION, w/'both'); (w/'both'/'metadata').mkdir(); (w/'both'/'metadata'/'posts.jsonl').write_text('{"id": 1}\n')
    real = RunDir(w/'real', P); prepare_data(real, COLLECTION, workers=1, already_cropped=True)
    save_checkpoint(w/'real'/'style'/'metric.safetensors', {'w': torch.ones(2)}, {'preset': 'tiny'})   # a trained stage
    return w


def snapshot(root):
    "Every file under `root`, by content, and every folder (an empty one left behind is a partial artefact too)."
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else 'folder'
            for p in sorted(Path(root).rglob('*'))}


# (kind, arguments with {w} for the world folder, environment, what the one line must say)
CLI_FAULTS = [
    ('no command', [], {}, 'usage: animestyle'),
    ('unknown command', ['frobnicate'], {}, "unknown command 'frobnicate'"),
    ('unknown option', ['prepare', '--run', '{w}/fresh', '--bogus', '1'], {}, 'unrecognized arguments: --bogus 1'),
    ('option without its value', ['prepare', '--run'], {}, 'argument --run: expected one argument'),
    ('unknown preset', ['train-style', '--preset', 'huge', '--run', '{w}/new'], {}, "unknown preset 'huge'"),
    ('unknown preset in $ANIMESTYLE_PRESET', ['prepare', '--run', '{w}/new'], {'ANIMESTYLE_PRESET': 'huge'}, "unknown preset 'huge'"),
    ('settings file missing', ['prepare', '--run', '{w}/new'], {'ANIMESTYLE_SETTINGS': '{w}/nowhere.ini'}, 'settings file'),
    ('non-numeric seed', ['train-gan', '--run', '{w}/new', '--seed', 'abc'], {}, "argument --seed: invalid int value: 'abc'"),
    ('fractional step count', ['train-style', '--run', '{w}/new', '--ckpt-every', '1.5'], {}, "invalid int value: '1.5'"),
    ('negative step count', ['train-content', '--run', '{w}/new', '--ckpt-every', '-5'], {}, 'whole number of training steps'),
    ('non-numeric $ANIMESTYLE_CKPT_EVERY', ['pipeline', '--run', '{w}/new'], {'ANIMESTYLE_CKPT_EVERY': 'lots'}, "got 'lots'"),
    ('missing run directory (report)', ['report', '--run', '{w}/nowhere'], {}, 'no run at'),
    ('missing run directory (explore)', ['explore', '--run', '{w}/nowhere'], {}, 'no run at'),
    ('run directory is a file', ['prepare', '--run', '{w}/notes.txt'], {}, 'is a file, not a run directory'),
    ('run directory is a folder of other files', ['pipeline', '--run', '{w}/photos'], {}, 'not a run directory'),
    ('run made with another preset', ['train-style', '--preset', 'cpu', '--run', '{w}/fresh'], {}, "made with preset 'tiny'"),
    ('run made with another seed', ['train-style', '--run', '{w}/fresh', '--seed', '7'], {}, 'made with seed 42'),
    ('damaged config.json', ['train-style', '--run', '{w}/badjson'], {}, 'is not valid JSON'),
    ('config.json of an incompatible version', ['pipeline', '--run', '{w}/oldversion'], {}, 'incompatible animestyle version'),
    ('--data pointing to nothing', ['prepare', '--run', '{w}/new', '--data', '{w}/nothing'], {}, 'no such file or folder'),
    ('--data an empty folder', ['prepare', '--run', '{w}/fresh', '--data', '{w}/empty'], {}, 'no usable images'),
    ('--data a file that is not metadata', ['prepare', '--run', '{w}/fresh', '--data', '{w}/notes.txt'], {}, 'not Danbooru metadata'),
    ('--data artist folders and Danbooru metadata', ['prepare', '--run', '{w}/new', '--data', '{w}/both'], {}, '--format folder or --format danbooru'),
    ('--data face crops read with face detection', ['prepare', '--run', '{w}/new', '--data', str(COLLECTION)], {}, 'add --already-cropped'),
    ('--format not a format', ['prepare', '--run', '{w}/new', '--data', str(COLLECTION), '--format', 'zip'], {}, 'must be one of auto, folder, danbooru'),
    ('--threshold out of range', ['train-style', '--run', '{w}/new', '--data', str(COLLECTION), '--threshold', '1.5'], {}, 'threshold (--threshold) must be between 0 and 1'),
    ('--min-per-artist below 1', ['pipeline', '--run', '{w}/new', '--data', str(COLLECTION), '--min-per-artist', '0'], {}, 'a whole number, 1 or more'),
    ('--image-root not a folder', ['prepare', '--run', '{w}/new', '--data', str(COLLECTION), '--image-root', '{w}/nothing'], {}, 'is not a folder'),
    ('an ingestion option on the synthetic data', ['prepare', '--run', '{w}/new', '--already-cropped'], {}, 'applies to a real data source'),
    ('an option that would change a trained run\'s data', ['train-gan', '--run', '{w}/real', '--min-per-artist', '5'], {}, 'min_per_artist (--min-per-artist) 5 would replace them'),
    ('--data a folder of non-images', ['prepare', '--run', '{w}/fresh', '--data', '{w}/junk'], {}, 'not an image'),
    ('--data replacing the images of trained stages', ['train-gan', '--run', '{w}/trained', '--data', '{w}/junk'], {}, 'would replace them'),
    ('report of a run with no trained stage', ['report', '--run', '{w}/fresh'], {}, 'no trained style stage'),
    ('measure-gan of a run with no trained GAN', ['measure-gan', '--run', '{w}/trained'], {}, 'has no trained GAN'),
    ('measure-gan of a missing run directory', ['measure-gan', '--run', '{w}/nowhere'], {}, 'no run at'),
    ('checkpoint cut short', ['train-style', '--run', '{w}/cut'], {}, 'is truncated'),
    ('pickle planted as a checkpoint', ['train-style', '--run', '{w}/pickled'], {}, 'is a pickle'),
    ('damaged image cache', ['train-style', '--run', '{w}/badcache'], {}, 'the cache is damaged'),
]


def run_main(argv, env, monkeypatch):
    for k, v in env.items(): monkeypatch.setenv(k, v)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize('kind,argv,env,says', CLI_FAULTS, ids=[f[0] for f in CLI_FAULTS])
def test_bad_input_is_one_line_and_changes_nothing(world, monkeypatch, kind, argv, env, says):
    fill = lambda s: s.replace('{w}', str(world))
    argv, env = [fill(a) for a in argv], {k: fill(v) for k, v in env.items()}
    before = snapshot(world)
    code, out, err = run_main(argv, env, monkeypatch)
    assert code == 2, (kind, code, err)
    assert len(err.splitlines()) == 1 and err.endswith('\n'), err
    assert says in err and 'Traceback' not in err + out, err
    assert err.startswith('animestyle: error: ') or kind == 'no command'
    assert snapshot(world) == before                       # nothing on disk changed, nothing added
    assert not (world/'pwned').exists()                    # the planted pickle never ran


def test_the_table_has_distinct_kinds():
    kinds = [f[0] for f in CLI_FAULTS]
    assert len(set(kinds)) == len(kinds) >= 25


@pytest.mark.parametrize('argv,says', [
    (['prepare', '--run', '{w}/new', '--seed', 'abc'], "invalid int value: 'abc'"),
    (['train-style', '--run', '{w}/pickled'], 'is a pickle'),
], ids=['parser error', 'error inside a stage'])
def test_real_process_exit_status_and_stderr(world, argv, says):
    "The console script itself: status 2, one line on stderr (library warnings go to stdout), no traceback."
    before = snapshot(world)
    r = subprocess.run([CLI, *[a.replace('{w}', str(world)) for a in argv]], capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'ANIMESTYLE_PRESET': 'tiny'})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and says in r.stderr and 'Traceback' not in r.stderr + r.stdout, r.stderr
    assert snapshot(world) == before and not (world/'pwned').exists()


def test_help_is_not_an_error(monkeypatch):
    code, out, err = run_main(['train-style', '--help'], {}, monkeypatch)
    assert code == 0 and '--ckpt-every' in out and '--skip-bad-batches' in out and err == ''
    for flag in ('--already-cropped', '--format', '--min-per-artist', '--threshold', '--margin', '--max-faces', '--image-root',
                 '--test-frac', '--skip-baseline'):
        assert flag in out, flag
