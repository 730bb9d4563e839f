"""Bad input on the command line: every kind is one line on stderr and exit status 2, no traceback, and every
file already on disk is unchanged (hashed before and after). `CLI_FAULTS` is the table of kinds tried."""
import contextlib, hashlib, io, json, os, pickle, shutil, signal, struct, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

import animestyle
import animestyle.cli as cli_mod
from animestyle.cli import main
from animestyle.core import RunDir, get_preset, load_checkpoint, run_lock, save_checkpoint
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
    shutil.copytree(fresh.path, w/'overwritten')
    ck = save_checkpoint(w/'overwritten'/'style'/'metric.safetensors', {'w': torch.ones(8192)}, {'finished': True})
    overwrite_inside_a_tensor(ck)
    return w


def overwrite_inside_a_tensor(path, n=16*1024):
    "Overwrite `n` bytes in the middle of the largest tensor of safetensors file `path` with other bytes of the same size."
    raw = bytearray(path.read_bytes())
    size = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8:8+size])
    a, b = max((v['data_offsets'] for k, v in head.items() if k != '__metadata__'), key=lambda o: o[1]-o[0])
    assert b-a > n, (a, b)
    at = 8+size+a+(b-a-n)//2
    raw[at:at+n] = bytes(x ^ 0x5A for x in raw[at:at+n])
    path.write_bytes(bytes(raw))


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
    ('checkpoint bytes overwritten inside a tensor', ['train-style', '--run', '{w}/overwritten'], {},
     'metric.safetensors is damaged (checksum mismatch): delete it and rerun `animestyle train-style --run'),
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


# --- errors that are not the user's --------------------------------------------------------------------------------

def deep_type_error(*a, **k): return len(3)                       # a bug: TypeError
def deep_value_error(*a, **k): return np.zeros(2).reshape(3)       # a bare ValueError from deep in a library
def permission_denied(*a, **k): raise PermissionError(13, 'Permission denied', '/some/run/config.json')


@pytest.mark.parametrize('fault,code,says', [
    (deep_type_error, 1, 'internal error (TypeError)'),
    (deep_value_error, 1, 'internal error (ValueError)'),
    (permission_denied, 2, "Permission denied: '/some/run/config.json'"),
], ids=['TypeError', 'ValueError from numpy', 'PermissionError'])
def test_bugs_show_their_traceback_user_errors_do_not(world, monkeypatch, fault, code, says):
    "A bug (any error that is not the library's own or the file system's) is a traceback and status 1, never a user error's line."
    monkeypatch.setattr(cli_mod, 'open_run', fault)
    got, out, err = run_main(['report', '--run', str(world/'fresh')], {}, monkeypatch)
    assert got == code, err
    last = err.splitlines()[-1]
    assert last.startswith('animestyle: error: ') and says in last, err
    if code == 1: assert err.startswith('Traceback (most recent call last)') and 'deep_' in err, err
    else: assert len(err.splitlines()) == 1, err


def test_a_bug_in_a_real_process_is_a_traceback_and_status_1(world):
    code = ("import sys, animestyle.cli as c\n"
            "c.open_run = lambda *a, **k: len(3)\n"
            "sys.exit(c.main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, '-c', code, 'report', '--run', str(world/'fresh')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr
    assert 'Traceback' in r.stderr and "TypeError: object of type 'int' has no len()" in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith('animestyle: error: internal error (TypeError)'), r.stderr


# --- checkpoints ---------------------------------------------------------------------------------------------------

def test_checkpoint_without_checksum_still_loads(tmp_path):
    "A checkpoint written before checksums existed (no checksum in its metadata) loads as before."
    from safetensors.torch import save_file
    save_file({'w': torch.arange(5.)}, str(tmp_path/'old.safetensors'), metadata={'animestyle': json.dumps({'epoch': 4})})
    t, meta = load_checkpoint(tmp_path/'old.safetensors')
    assert torch.equal(t['w'], torch.arange(5.)) and meta == {'epoch': 4}


def test_overwritten_bytes_are_caught_by_the_checksum(tmp_path):
    ck = save_checkpoint(tmp_path/'w.safetensors', {'a': torch.randn(8192), 'b': torch.ones(3)}, {'epoch': 1})
    assert load_checkpoint(ck)[1] == {'epoch': 1}
    overwrite_inside_a_tensor(ck)
    with pytest.raises(Exception, match=r'w.safetensors is damaged \(checksum mismatch\): delete it and rerun what wrote it'):
        load_checkpoint(ck)


def disk_full(tensors, fn, metadata=None):
    "safetensors' own failure on a full disk: part of the file written, then its multi-line I/O error."
    Path(fn).write_bytes(b'part of a file')
    from safetensors import SafetensorError
    raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28)\n' + 'at ...\n'*60)


def test_disk_full_while_writing_a_checkpoint_is_one_line(world, tmp_path, monkeypatch):
    "The stage's first checkpoint write fails: one line naming the file and the free space, status 2, no temporary file left."
    import animestyle.core as core
    shutil.copytree(world/'fresh', tmp_path/'run')
    monkeypatch.setattr(core, 'save_file', disk_full)
    code, out, err = run_main(['train-style', '--run', str(tmp_path/'run'), '--ckpt-every', '1'], {}, monkeypatch)
    assert code == 2 and len(err.splitlines()) == 1 and 'Traceback' not in err + out, err
    assert err.startswith(f"animestyle: error: cannot write {tmp_path/'run'/'style'}/"), err
    assert 'No space left on device; ' in err and ' free in ' in err and 'rerun the same command to resume' in err, err
    assert not [p for p in (tmp_path/'run').rglob('*.tmp')]


def test_disk_full_on_a_real_small_file_system(world, tmp_path):
    "The same on a real full disk: the run's style folder on a 64 KiB tmpfs (root only; skipped where mount is not allowed)."
    shutil.copytree(world/'fresh', tmp_path/'run'); (tmp_path/'run'/'style').mkdir()
    mnt = tmp_path/'run'/'style'
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(mnt)], capture_output=True).returncode:
        pytest.skip('cannot mount a small tmpfs here')
    try:
        r = subprocess.run([CLI, 'train-style', '--run', str(tmp_path/'run'), '--ckpt-every', '1'], capture_output=True, text=True,
                           timeout=600, env={**os.environ, 'ANIMESTYLE_PRESET': 'tiny'})
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
        assert f'cannot write {mnt}/' in r.stderr and 'No space left on device' in r.stderr and ' free in ' in r.stderr, r.stderr
        assert not list(mnt.glob('*.tmp'))
    finally: subprocess.run(['umount', str(mnt)])


# --- one writer per run ----------------------------------------------------------------------------------------------

def hold_lock(run):
    "Another process holding `run`'s lock, as a running command does."
    p = subprocess.Popen([sys.executable, '-c', f"import time; from animestyle.core import run_lock\n"
                          f"with run_lock({str(run)!r}): print('locked', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'locked'
    return p


def test_a_second_writer_is_refused_naming_the_first(world, tmp_path):
    shutil.copytree(world/'fresh', tmp_path/'run')
    holder = hold_lock(tmp_path/'run')
    try:
        before = snapshot(tmp_path/'run')
        for argv in (['pipeline'], ['train-style'], ['report'], ['measure-gan']):
            r = subprocess.run([CLI, *argv, '--run', str(tmp_path/'run')], capture_output=True, text=True, timeout=600,
                               env={**os.environ, 'ANIMESTYLE_PRESET': 'tiny'})
            assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
            assert f'is in use by another animestyle command (PID {holder.pid})' in r.stderr, r.stderr
        assert snapshot(tmp_path/'run') == before
    finally: holder.kill(); holder.wait()


def test_a_dead_holders_lock_is_taken_over(world, tmp_path, monkeypatch):
    shutil.copytree(world/'fresh', tmp_path/'run')
    holder = hold_lock(tmp_path/'run')
    holder.send_signal(signal.SIGKILL); holder.wait()
    assert (tmp_path/'run'/'.run.lock').read_text().strip() == str(holder.pid)       # left behind by the dead holder
    code, out, err = run_main(['report', '--run', str(tmp_path/'run')], {}, monkeypatch)
    assert code == 2 and 'no trained style stage' in err, err                           # got past the lock
    assert not (tmp_path/'run'/'.run.lock').exists()


# --- help ----------------------------------------------------------------------------------------------------------

def test_help_lists_every_command_with_one_line(monkeypatch):
    code, out, err = run_main(['--help'], {}, monkeypatch)
    assert code == 0 and err == ''
    for cmd in [*cli_mod.COMMANDS]:
        line = next((l for l in out.splitlines() if l.split()[:1] == [cmd]), None)
        assert line and len(line.split()) > 3, (cmd, out)
    assert {'prepare', 'train-style', 'train-content', 'train-gan', 'measure-gan', 'report', 'pipeline', 'explore'} <= set(cli_mod.COMMANDS)


def test_version(monkeypatch):
    for flag in ('--version', '-V'):
        code, out, err = run_main([flag], {}, monkeypatch)
        assert code == 0 and out == f'animestyle {animestyle.__version__}\n', out


def test_help_and_argument_errors_do_not_import_torch():
    "Every command's --help and a mistyped option answer without importing torch (which takes seconds)."
    code = ("import sys, contextlib, io, animestyle.cli as c\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    codes = [c.main([k, '--help']) for k in c.COMMANDS] + [c.main(['--help']), c.main(['train-gan', '--seed', 'x']), c.main(['bogus'])]\n"
            "print(codes, 'torch' in sys.modules, 'animestyle.core' in sys.modules)")
    start = time.time()
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=600)
    assert r.stdout.split() == ['[0,'] + ['0,']*len(cli_mod.COMMANDS) + ['2,', '2]', 'False', 'False'], r.stdout + r.stderr
    assert time.time()-start < 3


def test_help_text_is_plain(monkeypatch):
    "No '(str)' labels, one way to write defaults, --preset's default stated, the ingestion flags under their own heading."
    code, out, err = run_main(['pipeline', '--help'], {}, monkeypatch)
    assert code == 0
    assert '(str)' not in out and '(int)' not in out and '(default ' not in out and '; default ' not in out
    flat = ' '.join(out.split())
    assert '--preset NAME preset: paper, cpu or tiny (default: $ANIMESTYLE_PRESET, else cpu' in flat
    ingest = out.index('ingestion options')
    for flag in ('--already-cropped', '--format', '--min-per-artist', '--threshold', '--margin', '--max-faces', '--image-root', '--test-frac'):
        assert out.index(f'  {flag}') > ingest, flag
    for flag in ('--ckpt-every', '--seed', '--skip-baseline'): assert out.index(f'  {flag}') < ingest, flag
    code, out, _ = run_main(['train-style', '--help'], {}, monkeypatch)
    assert "§6.1, the paper's metric-learning results" in ' '.join(out.split())


def test_explore_keeps_the_explorers_options():
    "The light `explore` that builds the parser takes exactly the explorer's options, with its defaults."
    import inspect
    from animestyle.explorer import explore
    sig = lambda f: [(q.name, q.default) for q in inspect.signature(f).parameters.values()]
    assert sig(cli_mod.explore) == sig(explore)
