"The image cache: idempotent, atomic, resumable after kill -9, safe under concurrent builders; the split rule; the loaders."
import json, logging, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest
import torch

from animestyle.core import RunDir, get_preset
from animestyle.data import loaders, synthetic
from animestyle.data.loaders import CacheError, ImageCache, all_dls, build_cache, prepare_data, style_dls, synthetic_plan


@pytest.fixture
def preset(): return get_preset('tiny')


def test_idempotent_and_rebuilt_on_new_input(tmp_path, preset):
    run = RunDir(tmp_path/'run', preset)
    c1 = prepare_data(run, workers=2, chunk=32)
    stamp = (run.data/'images.u8').stat().st_mtime_ns
    c2 = prepare_data(run, workers=2, chunk=32)
    assert c2.meta['built'] == c1.meta['built'] and (run.data/'images.u8').stat().st_mtime_ns == stamp
    assert isinstance(c2.images, np.memmap) and c2.images.shape == (len(c1), preset.image_size, preset.image_size, 3)
    time.sleep(1.1)
    c3 = prepare_data(run, workers=1, chunk=32, jitter=0.1)       # another input: rebuilt in place
    assert c3.meta['key']['jitter'] == 0.1 and c3.meta['built'] != c1.meta['built']
    assert not (tmp_path/'run'/'.data.partial').exists() and not (run.data/'chunks').exists()


def test_split_rule(tmp_path, preset):
    cache = prepare_data(RunDir(tmp_path/'run', preset), workers=1)
    m = cache.manifest
    n_test = max(10, round(0.1 * preset.synth_per_artist))
    assert (m.groupby('artist').split.apply(lambda s: (s == 'test').sum()) == n_test).all()
    assert sorted(m.artist_id.unique()) == list(range(preset.synth_artists))
    assert {'character', 'style_hair_fineness', 'style_jaw_sharpness', 'content_hair_colour', 'source'} <= set(m.columns)
    # deterministic: the same seed draws the same pixels and the same split
    again = prepare_data(RunDir(tmp_path/'run2', preset), workers=2)
    assert (again.manifest.split == m.split).all() and np.array_equal(np.asarray(again.images), np.asarray(cache.images))


_KILLABLE = textwrap.dedent('''
    import sys, time
    from animestyle.core import RunDir, get_preset
    from animestyle.data import loaders, synthetic
    slow = synthetic.render_rows
    def render_rows(rows, size):
        time.sleep(0.4); return slow(rows, size)
    synthetic.render_rows = render_rows
    loaders.prepare_data(RunDir(sys.argv[1], get_preset('tiny')), workers=1, chunk=8)
''')


def test_resume_after_kill(tmp_path, preset, caplog):
    run_dir = tmp_path/'run'
    proc = subprocess.Popen([sys.executable, '-c', _KILLABLE, str(run_dir)], env={**os.environ, 'ANIMESTYLE_PRESET': 'tiny'})
    chunks = run_dir/'.data.partial'/'chunks'
    t0 = time.time()
    while len(list(chunks.glob('*.json'))) < 3:
        assert proc.poll() is None and time.time() - t0 < 120, 'the build ended before it could be killed'
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL); proc.wait()
    done = len(list(chunks.glob('*.json')))
    n_chunks = -(-preset.synth_artists * preset.synth_per_artist // 8)
    assert 3 <= done < n_chunks
    run = RunDir(run_dir)
    with pytest.raises(CacheError, match='not a finished image cache'): ImageCache(run.data)   # never half a cache
    with caplog.at_level(logging.INFO, logger='animestyle.data'):
        cache = prepare_data(run, workers=1, chunk=8)
    assert f'{done} of {n_chunks} chunks already built' in caplog.text
    fresh = prepare_data(RunDir(tmp_path/'fresh', preset), workers=2, chunk=8)
    assert np.array_equal(np.asarray(cache.images), np.asarray(fresh.images))
    assert cache.manifest.equals(fresh.manifest)


def test_failed_assembly_leaves_no_cache(tmp_path, preset):
    plan = synthetic_plan(preset, seed=1)
    finish = plan.finish
    def broken(recs): raise RuntimeError('disk full')
    plan.finish = broken
    with pytest.raises(RuntimeError): build_cache(tmp_path/'data', plan, workers=1, chunk=50)
    assert not (tmp_path/'data').exists()
    plan.finish = finish                                             # the chunks are kept: the retry only assembles
    cache = build_cache(tmp_path/'data', plan, workers=1, chunk=50)
    assert len(cache) == preset.synth_artists * preset.synth_per_artist


_CONCURRENT = textwrap.dedent('''
    import sys
    from animestyle.core import RunDir, get_preset
    from animestyle.data.loaders import prepare_data
    print(prepare_data(RunDir(sys.argv[1], get_preset('tiny')), workers=1, chunk=16).meta['built'])
''')


def test_concurrent_builders_build_once(tmp_path, preset):
    RunDir(tmp_path/'run', preset)
    procs = [subprocess.Popen([sys.executable, '-c', _CONCURRENT, str(tmp_path/'run')], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs[0] == outs[1]


def test_damaged_cache_is_refused(tmp_path, preset):
    run = RunDir(tmp_path/'run', preset)
    prepare_data(run, workers=1)
    with open(run.data/'images.u8', 'r+b') as f: f.truncate(1000)
    with pytest.raises(CacheError, match='damaged'): ImageCache(run.data)


def test_loaders(tmp_path, preset):
    cache = prepare_data(RunDir(tmp_path/'run', preset), workers=1)
    m = cache.manifest
    dls = style_dls(cache, bs=16, device='cpu')
    seen = torch.cat([y for _, y in dls.train])
    assert len(seen) == (m.split == 'train').sum() // 16 * 16
    x, y = dls.valid.one_batch()
    assert x.dtype == torch.float32 and x.shape == (16, 3, cache.size, cache.size) and y.dtype == torch.long
    test_idx = np.flatnonzero(m.split == 'test')[:16]
    assert (y.numpy() == m.artist_id.values[test_idx]).all()       # labels stay with their images
    pk = style_dls(cache, bs=18, device='cpu', pk=3)
    for _, y in pk.train:
        c = torch.bincount(y)
        assert len(y) == 18 and (c[c > 0] >= 3).all() and (c > 0).sum() == min(6, preset.synth_artists)
    train_rows = set(np.flatnonzero(m.split == 'train'))
    assert set(pk.train.dataset.idxs[pk.train.get_idxs()]) <= train_rows
    a = all_dls(cache, bs=16, device='cpu')
    assert a.train.n == len(cache) and a.valid.n == (m.split == 'test').sum()
