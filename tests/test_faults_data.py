"No silent fault in the data stage: odd file names and special files, damaged JSON, a stopped prepare, a damaged or unwritable cache, a dead lock holder."
import json, logging, os, socket, subprocess, sys, textwrap, threading, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from animestyle import cli
from animestyle.core import RunDataError, RunDir, get_preset, load_json
from animestyle.data import loaders
from animestyle.data.ingest import BadImage, NoImagesError, plan_source, read_image, scan_folder
from animestyle.data.loaders import CacheError, ImageCache, build_cache, prepare_data
from animestyle.data.synthetic import draw_portrait, make_artists, make_characters


def _collection(root, artists=(b'ink', b'pastel', b'chalk'), per=6):
    "Face crops in one folder per artist; folder and file names given as bytes, so that they may be anything a disk holds."
    arts, chars = make_artists(len(artists), seed=3), make_characters(per, seed=3)
    for a, name in enumerate(artists):
        d = os.path.join(os.fsencode(root), name); os.makedirs(d)
        for i in range(per):
            Image.fromarray(draw_portrait(arts.iloc[a], chars.iloc[i], size=48, seed=10 * a + i)).save(os.path.join(d, b'%02d.png' % i))
    return Path(root)


def _opts(**kw): return dict(already_cropped=True, min_per_artist=2, min_test=1, **kw)


# --- file names that are not UTF-8, and files that are not regular files

def test_file_names_that_are_not_utf8_are_used(tmp_path):
    root = _collection(tmp_path/'c', artists=(b'ink', b'pastel\xfe'))
    good = os.path.join(os.fsencode(root), b'ink', b'00.png')
    os.link(good, os.path.join(os.fsencode(root), b'ink', b'\xff.png'))       # a Latin-1 name, as old archives hold
    plan = plan_source(root, size=32, **_opts())
    cache = build_cache(tmp_path/'data', plan, workers=1, chunk=4)
    m = cache.manifest
    assert len(cache) == 13 and sorted(m.artist.unique()) == ['ink', 'pastel\\xfe']
    assert m.source.str.endswith('ink/\\xff.png').sum() == 1                  # the byte shown as an escape, the image kept
    assert pd.read_csv(tmp_path/'data'/'skipped.csv').empty


def test_special_files_are_skipped_not_read(tmp_path):
    root = _collection(tmp_path/'c', artists=(b'ink', b'pastel'))
    os.mkfifo(root/'ink'/'pipe.png')                                         # reading a named pipe waits for a writer forever
    os.symlink('/dev/zero', root/'ink'/'zero.png')                           # reading a device never ends
    os.symlink(root/'ink'/'gone.png', root/'pastel'/'dangling.png')
    sock = socket.socket(socket.AF_UNIX); sock.bind(str(root/'pastel'/'sock.png'))
    try:
        items, skipped = scan_folder(root)
        reasons = dict((Path(p).name, r) for p, r in skipped)
        assert reasons == {'pipe.png': 'not a regular file (named pipe)', 'zero.png': 'not a regular file (device)',
                           'dangling.png': 'broken link', 'sock.png': 'not a regular file (socket)'}
        assert len(items) == 12
        # read_image refuses a pipe too (a file replaced after the scan), without waiting for a writer
        out = []
        t = threading.Thread(target=lambda: out.append(pytest.raises(BadImage, read_image, root/'ink'/'pipe.png')), daemon=True)
        t.start(); t.join(20)
        assert out and 'named pipe' in str(out[0].value)
        cache = build_cache(tmp_path/'data', plan_source(root, size=32, **_opts()), workers=1)
        sk = pd.read_csv(tmp_path/'data'/'skipped.csv')
        assert len(cache) == 12 and sorted(sk.reason) == sorted(reasons.values())
    finally: sock.close()


# --- damaged JSON files name themselves

def _damage(path):
    "Cut a JSON file in the middle of a value, as a full disk or a killed editor leaves it."
    raw = path.read_text(); path.write_text(raw[:len(raw) // 2])


@pytest.fixture(scope='module')
def made_run(tmp_path_factory):
    run = RunDir(tmp_path_factory.mktemp('runs')/'run', get_preset('tiny'))
    prepare_data(run, workers=1)
    return run


@pytest.mark.parametrize('name', ['meta.json', 'images.json'])
def test_a_damaged_cache_file_is_named(tmp_path, made_run, name, capsys):
    import shutil
    run = RunDir(shutil.copytree(made_run.path, tmp_path/'run'))
    _damage(run.data/name)
    with pytest.raises(RunDataError, match=f"data/{name} is damaged .*delete the folder .*/data and rerun `animestyle prepare --run "):
        ImageCache(run.data)
    assert cli.main(['prepare', '--run', str(run.path)]) == cli.EXIT_USER
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'{run.data/name} is damaged' in err
    shutil.rmtree(run.data)                                                     # the mending the message gives
    assert cli.main(['prepare', '--run', str(run.path)]) == 0 and len(ImageCache(run.data)) == len(ImageCache(made_run.data))


@pytest.mark.parametrize('stage', ['judge', 'gan', 'style', 'content'])
def test_a_damaged_stage_file_is_named(tmp_path, stage):
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    f = run.stage(stage)/'metrics.json'
    f.write_text(json.dumps(dict(epochs=list(range(40)), note='x'), indent=1)); _damage(f)
    with pytest.raises(RunDataError) as e: load_json(f)
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith(f'{f} is damaged (not JSON: ')
    assert msg.endswith(f"delete it and rerun `animestyle pipeline --run {run.path}`: the stage that writes it runs again")


def test_the_judge_reads_through_load_json(tmp_path, monkeypatch):
    from animestyle import judge
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    w, m = judge._paths(run)
    w.write_bytes(b'x'); m.write_text('{"top1": 0.5,')
    monkeypatch.setattr(judge, 'load_checkpoint', lambda p: ({}, dict(heads=[['artist_id', 2]])))
    monkeypatch.setattr(judge.Judge, 'load_state_dict', lambda self, t: None)
    with pytest.raises(RunDataError, match='judge/metrics.json is damaged'): judge.load_judge(run, 'cpu')


def test_a_damaged_chunk_is_named(tmp_path):
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    plan = loaders.synthetic_plan(run.preset)
    finish = plan.finish
    plan.finish = lambda recs: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt): build_cache(run.data, plan, workers=1, chunk=64)
    chunk = run.path/'.data.partial'/'chunks'/'000001.json'
    _damage(chunk)
    plan.finish = finish
    with pytest.raises(RunDataError, match=r"000001.json is damaged .*: delete it and rerun `animestyle prepare --run .*` to build that part again"):
        build_cache(run.data, plan, workers=1, chunk=64)
    chunk.unlink()
    assert len(build_cache(run.data, plan, workers=1, chunk=64)) == run.preset.synth_artists * run.preset.synth_per_artist


# --- a stopped prepare keeps its data

def test_a_stopped_prepare_resumes_its_own_source(tmp_path, monkeypatch, caplog):
    root = _collection(tmp_path/'c')
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    assemble = loaders._assemble
    def stop(*a, **k): raise KeyboardInterrupt()                               # Ctrl-C once every chunk is built
    monkeypatch.setattr(loaders, '_assemble', stop)
    with pytest.raises(KeyboardInterrupt): prepare_data(run, root, workers=1, chunk=4, **_opts())
    monkeypatch.setattr(loaders, '_assemble', assemble)
    chunks = sorted((run.path/'.data.partial'/'chunks').glob('*.npy'))
    assert len(chunks) == 5
    # another source asked for is refused while the stopped build waits, and its chunks stay
    with pytest.raises(CacheError, match=r"unfinished image cache of .*/c \(a prepare was stopped\): rerun `animestyle prepare --run "):
        prepare_data(RunDir(run.path), 'synthetic', workers=1)
    assert sorted((run.path/'.data.partial'/'chunks').glob('*.npy')) == chunks
    # the plain command, as `animestyle pipeline --run R` runs it, finishes the collection from its chunks
    with caplog.at_level(logging.INFO, logger='animestyle.data'):
        cache = prepare_data(RunDir(run.path), workers=1, chunk=4)
    assert '5 of 5 chunks already built' in caplog.text
    assert cache.meta['name'] == str(root) and len(cache) == 18 and len(cache.artists) == 3
    assert load_json(run.path/'config.json')['data']['source'] == str(root.resolve())


def test_a_source_without_images_leaves_the_run_as_it_was(tmp_path):
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    n = len(prepare_data(run, workers=1))
    (tmp_path/'empty'/'someone').mkdir(parents=True)
    with pytest.raises(NoImagesError): prepare_data(run, tmp_path/'empty', workers=1)
    assert load_json(run.path/'config.json')['data']['source'] == 'synthetic' and len(prepare_data(RunDir(run.path), workers=1)) == n


# --- checksums of the cache

def _copy_run(made_run, tmp_path):
    import shutil
    return RunDir(shutil.copytree(made_run.path, tmp_path/'run'))


def test_zeroed_images_are_found_on_read(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, 'CHECK_BYTES', 64 << 10)                    # blocks of 21 tiny images: several per cache
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    prepare_data(run, workers=1)
    f = run.data/'images.u8'
    size = f.stat().st_size
    with open(f, 'r+b') as fh: fh.seek(size // 2); fh.write(bytes(64 << 10))   # 64 KiB zeroed, the same size
    cache = ImageCache(run.data)                                               # opening reads no image
    n = len(cache)
    assert cache.images[:3].shape[0] == 3                                      # an untouched block reads
    with pytest.raises(CacheError, match=rf"images.u8 is damaged: images \d+ to \d+ do not match their checksum; delete the folder {run.data} and rerun `animestyle prepare --run {run.path}`"):
        cache.images[[0, n // 2]]
    with pytest.raises(CacheError, match='images.u8 is damaged'): ImageCache(run.data).verify()
    from animestyle.data.loaders import CacheDataset
    with pytest.raises(CacheError, match='images.u8 is damaged'): CacheDataset(ImageCache(run.data), np.arange(n)).batch(np.arange(n))


def test_a_cut_manifest_is_refused(tmp_path, made_run):
    run = _copy_run(made_run, tmp_path)
    f = run.data/'manifest.csv'
    raw = f.read_bytes(); f.write_bytes(raw[:len(raw) - 40])                   # mid-row: pandas pads the row with NaN
    assert len(pd.read_csv(f)) == len(ImageCache(made_run.data))
    with pytest.raises(CacheError, match=rf"manifest.csv is damaged: it does not match its checksum; delete the folder {run.data}"):
        ImageCache(run.data)


def test_the_checksums_cover_every_block(made_run):
    spec = load_json(made_run.data/'images.json')
    n = len(ImageCache(made_run.data))
    assert len(spec['blocks']) == -(-n // spec['block_rows']) and len(spec['manifest']) == 40


# --- a full disk

def test_a_full_disk_is_refused_before_the_cache_is_sized(tmp_path, monkeypatch):
    import shutil
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    usage = shutil.disk_usage
    monkeypatch.setattr(loaders.shutil, 'disk_usage', lambda p: usage(p)._replace(free=10_000))
    with pytest.raises(CacheError, match=rf"not enough free space in {run.path} for the image cache: it needs 432.0 KiB, 9.8 KiB is free; .* rerun the same command"):
        prepare_data(run, workers=1, chunk=64)
    part = run.path/'.data.partial'
    assert not (part/'.images.u8.tmp').exists() and not (part/'images.u8').exists() and len(list((part/'chunks').glob('*.npy'))) > 0
    monkeypatch.setattr(loaders.shutil, 'disk_usage', usage)
    def enospc(fd, off, n): raise OSError(28, 'No space left on device')      # the disk fills between the check and the allocation
    monkeypatch.setattr(loaders.os, 'posix_fallocate', enospc)
    with pytest.raises(CacheError, match='not enough free space in'): prepare_data(RunDir(run.path), workers=1, chunk=64)
    assert not (part/'.images.u8.tmp').exists()
    monkeypatch.undo()
    assert len(prepare_data(RunDir(run.path), workers=1, chunk=64)) == run.preset.synth_artists * run.preset.synth_per_artist


def test_a_full_disk_while_saving_a_chunk_is_one_line(tmp_path, monkeypatch):
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    def full(*a, **k): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(loaders.np, 'save', full)
    with pytest.raises(CacheError, match=rf"not enough free space in {run.path} for the image cache"): prepare_data(run, workers=1, chunk=64)


# --- the lock: never held by workers, taken over from a dead holder

_HOLD = textwrap.dedent('''
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0); os.pwrite(fd, sys.argv[2].encode(), 0)
    print('held', flush=True); time.sleep(600)
''')


def test_a_lock_whose_holder_is_dead_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True).stdout.strip()
    lock = tmp_path/'.data.lock'
    # a process left behind by the dead one keeps the lock, as an orphaned worker did
    keeper = subprocess.Popen([sys.executable, '-c', _HOLD, str(lock), f'{dead} {socket.gethostname()}\n'], stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout.readline().strip() == 'held'
        got = []
        def take():
            with loaders._locked(lock): got.append(lock.read_text().split()[0])
        t = threading.Thread(target=take, daemon=True); t.start(); t.join(30)
        assert got == [str(os.getpid())]
        # a live holder is waited for
        alive = subprocess.Popen([sys.executable, '-c', _HOLD, str(lock), f'{keeper.pid} {socket.gethostname()}\n'], stdout=subprocess.PIPE, text=True)
        assert alive.stdout.readline().strip() == 'held'
        got.clear(); t = threading.Thread(target=take, daemon=True); t.start(); t.join(2)
        assert not got
        alive.kill(); alive.wait(); t.join(30)
        assert got == [str(os.getpid())]
    finally: keeper.kill(); keeper.wait()


_PREPARE = textwrap.dedent('''
    import sys, time
    from animestyle.core import RunDir, get_preset
    from animestyle.data import ingest, loaders
    load = ingest.load_items
    def slow(items, **kw):
        time.sleep(float(sys.argv[3])); return load(items, **kw)
    ingest.load_items = slow
    if __name__ == '__main__':
        c = loaders.prepare_data(RunDir(sys.argv[1], get_preset('tiny')), sys.argv[2], workers=2, chunk=1,
                                 already_cropped=True, min_per_artist=2, min_test=1)
        print(len(c))
''')


def test_kill_9_during_a_parallel_prepare_leaves_no_lock_behind(tmp_path):
    root = _collection(tmp_path/'c')
    script = tmp_path/'prepare.py'; script.write_text(_PREPARE)                # a script: its workers are forked
    run = tmp_path/'run'
    proc = subprocess.Popen([sys.executable, str(script), str(run), str(root), '1.0'], start_new_session=True)
    chunks, t0 = run/'.data.partial'/'chunks', time.time()
    while len(list(chunks.glob('*.json'))) < 2:
        assert proc.poll() is None and time.time() - t0 < 120, 'the build ended before it could be killed'
        time.sleep(0.05)
    os.kill(proc.pid, 9); proc.wait()
    time.sleep(0.5)
    ps = subprocess.run(['ps', '-o', 'pid=,stat=', '-s', str(proc.pid)], capture_output=True, text=True).stdout.splitlines()
    alive = [l.split()[0] for l in ps if not l.split()[1].startswith('Z')]     # a zombie is dead (a container's init may not reap it)
    try:
        assert alive == []                                                     # no worker outlives the build
        again = subprocess.run([sys.executable, str(script), str(run), str(root), '0'], capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == '18'
    finally:
        for pid in alive: os.kill(int(pid), 9)
