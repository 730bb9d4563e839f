"The image cache: idempotent, atomic, resumable after kill -9, safe under concurrent builders; the split rule; the loaders."
import hashlib, io, json, logging, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from animestyle.core import RunDir, get_preset
from animestyle.data import loaders, synthetic
from animestyle.data.ingest import split_by_artist
from animestyle.data.loaders import (CacheError, ImageCache, all_dls, build_cache, data_spec, prepare_data, recorded_data, style_dls,
                                    synthetic_plan)


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


def _manifest_row_by_row(n_artists, n_characters, per_artist, seed=0, jitter=0.08):
    "The reference `synthetic_manifest` builds column by column: a dict per image, each value drawn in turn."
    A, C = synthetic.make_artists(n_artists, seed), synthetic.make_characters(n_characters, seed)
    rng, rows = np.random.default_rng([seed, 3]), []
    for i in range(n_artists):
        perm = rng.permutation(n_characters)
        for j in range(per_artist):
            ch = int(perm[j % n_characters])
            r = dict(artist=A.artist[i], artist_id=i, character=ch)
            for k in synthetic.STYLE_FACTORS:
                v = A.at[i, k]
                r[f'style_{k}'] = v if k in synthetic.CATEGORICAL_STYLE else float(np.clip(v + rng.normal(0, jitter), 0, 1))
            for k, (L, _) in synthetic.CONTENT_FACTORS.items():
                if k in synthetic.PICTURE_FACTORS: v = rng.integers(L) if L else rng.uniform(-1, 1)
                else: v = C.at[ch, k] if L else np.clip(C.at[ch, k] + rng.normal(0, 0.15), -1, 1)
                r[f'content_{k}'] = int(v) if L else float(v)
            r['draw_seed'] = int(rng.integers(2**31))
            rows.append(r)
    return pd.DataFrame(rows)


@pytest.mark.parametrize('args', [(3, 7, 7, 0), (3, 24, 7, 5), (4, 6, 13, 1, 0.1), (2, 3, 1, 42)])
def test_manifest_is_the_row_by_row_one(args):
    pd.testing.assert_frame_equal(synthetic.synthetic_manifest(*args), _manifest_row_by_row(*args), check_exact=True)


def test_manifest_is_pinned():
    "The default data set's manifest (hence its images) as first published; change the digest only when the generator changes on purpose."
    csv = synthetic.synthetic_manifest(32, 24, 100, seed=0).to_csv(index=False)
    assert hashlib.sha1(csv.encode()).hexdigest() == '82aa730525580260ee8b4b71281d690cb67d71e5'


def test_plan_rows_become_the_manifest(tmp_path, preset):
    "Tasks are the manifest's rows made into dicts a slice at a time, recorded as row numbers; the cache's manifest is the plan's, with split and source."
    plan = synthetic_plan(preset, seed=3)
    man = synthetic.synthetic_manifest(preset.synth_artists, preset.synth_characters, preset.synth_per_artist, 3)
    assert not isinstance(plan.tasks, list) and len(plan.tasks) == len(man)
    assert plan.tasks[5:12] == man.iloc[5:12].to_dict('records') and plan.tasks[len(man) - 2:len(man) + 5] == man.iloc[-2:].to_dict('records')
    parts = loaders._Chunks(plan.tasks, 37)
    assert len(parts) == -(-len(man) // 37) and parts[1] == plan.tasks[37:74] and parts.records(1) == [dict(image=i) for i in range(37, 74)]
    assert loaders._Chunks(list(range(10)), 4).records(2) == [8, 9]     # a plain list of tasks records itself
    plan.work = lambda rows, size: np.stack([np.full((size, size, 3), r['draw_seed'] % 256, np.uint8) for r in rows])
    cache = build_cache(tmp_path/'data', plan, workers=1, chunk=37)  # the last chunk is a short one
    want = pd.read_csv(io.StringIO(man.to_csv(index=False)))
    want.insert(2, 'split', split_by_artist(man.artist, 3)); want.insert(3, 'source', 'synthetic')
    pd.testing.assert_frame_equal(cache.manifest, want)
    assert (cache.images[:, 0, 0, 0] == man.draw_seed.values % 256).all()


def test_chunk_records_join_like_one_frame(tmp_path):
    "Records read a chunk at a time make the frame all records would make at once: skipped items, columns first seen later."
    chunks = [[dict(source='a', artist='x', face=0, likelihood=0.9, row=0), dict(source='b', artist='x', skip='no face found', row=None)],
              [dict(source='c', artist='y', skip='unreadable (OSError)', row=None)],
              [dict(source='d', artist='y', face=1, likelihood=0.5, pixel_hash='h', row=3), dict(source='e', artist='z', face=0, likelihood=0.7, pixel_hash='g', row=1)],
              [dict(artist='z', character=4), dict(artist='z', character=5)]]  # no row: the image is the record's position
    for i, recs in enumerate(chunks): (tmp_path/f'{i:06d}.json').write_text(json.dumps(recs))
    got = pd.concat([loaders._chunk_records(tmp_path/f'{i:06d}.json', i) for i in range(len(chunks))], ignore_index=True)
    want = pd.DataFrame([{**{k: v for k, v in r.items() if k != 'row'}, '_chunk': i, '_offset': -1 if r.get('row', j) is None else r.get('row', j)}
                         for i, recs in enumerate(chunks) for j, r in enumerate(recs)])
    pd.testing.assert_frame_equal(got, want)


COLLECTION = Path(__file__).resolve().parent/'fixtures'/'collection'

# A user's plain script: no `if __name__ == '__main__':`, and the face detector already used in the parent
_NO_GUARD = textwrap.dedent('''
    import sys
    from pathlib import Path
    from PIL import Image
    from animestyle.core import RunDir, get_preset
    from animestyle.data.ingest import detect_faces
    from animestyle.data.loaders import prepare_data
    from animestyle.data.synthetic import draw_portrait, make_artists, make_characters
    out = Path(sys.argv[1])
    for _, a in make_artists(2, seed=1).iterrows():
        (out/'mine'/a.artist).mkdir(parents=True, exist_ok=True)
        for j, ch in make_characters(5, seed=1).iterrows():
            Image.fromarray(draw_portrait(a, ch, size=256, seed=j)).save(out/'mine'/a.artist/f'{j}.png')
    print('parent found', len(detect_faces(Image.open(out/'mine'/'artist_00'/'0.png').convert('RGB'))), 'face')
    cache = prepare_data(RunDir(out/'run', get_preset('tiny')), out/'mine', min_per_artist=1, min_test=1, max_faces=1, workers=2, chunk=2)
    print('built', len(cache), 'faces of', len(cache.artists), 'artists')
''')


def _finishes(cmd, tmp_path, **kw):
    "Run `cmd` with a time limit: a build that waits forever fails the test instead of hanging it."
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, 'ANIMESTYLE_PRESET': 'tiny'}, **kw)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_script_without_main_guard_finishes(tmp_path):
    "Workers must not run the script again (spawn and forkserver do: the copy waits for its parent's cache lock forever)."
    (tmp_path/'mine.py').write_text(_NO_GUARD)
    out = _finishes([sys.executable, str(tmp_path/'mine.py'), str(tmp_path)], tmp_path)
    assert 'parent found 1 face' in out and 'built 10 faces of 2 artists' in out    # workers detected with helpers of their own


@pytest.mark.parametrize('how', ['python -c', 'interactive'])
def test_commands_and_interactive_interpreter_finish(tmp_path, how):
    code = (f"from animestyle.core import RunDir, get_preset\nfrom animestyle.data.loaders import prepare_data\n"
            f"c = prepare_data(RunDir({str(tmp_path/'run')!r}, get_preset('tiny')), {str(COLLECTION)!r}, already_cropped=True, workers=2, chunk=40)\n"
            f"print('built', len(c))\n")
    out = (_finishes([sys.executable, '-c', code], tmp_path) if how == 'python -c' else
           _finishes([sys.executable, '-i', '-q'], tmp_path, input=code))
    assert 'built 156' in out


def test_a_run_knows_its_data(tmp_path):
    "Prepared from a collection with its options, a run reopens exactly that cache; once trained, it refuses another."
    from animestyle.style import train_style
    run = RunDir(tmp_path/'run', get_preset('tiny', style_epochs=1))
    cache = prepare_data(run, COLLECTION, workers=1, already_cropped=True)
    meta = (run.data/'meta.json').read_bytes()
    assert recorded_data(run) == json.loads((run.path/'config.json').read_text())['data'] == data_spec(run)
    assert recorded_data(run)['already_cropped'] is True and recorded_data(run)['format'] == 'folder'
    assert prepare_data(run).artists == cache.artists == ['heavy_line', 'ink_wash', 'pastel_cel']
    model = train_style(run)                                          # the library's own default: the run's data
    assert model.centres.shape[0] == 3 and (run.data/'meta.json').read_bytes() == meta
    for bad in (dict(source='synthetic'), dict(min_per_artist=5), dict(already_cropped=False), dict(format='danbooru')):
        with pytest.raises(ValueError, match='would replace them'): prepare_data(run, **bad)
    assert prepare_data(run, COLLECTION, format='auto').meta['built'] == cache.meta['built']   # the same data, named again
    assert (run.data/'meta.json').read_bytes() == meta


def test_a_trained_run_refuses_changed_files_and_keeps_a_legacy_record(tmp_path):
    import shutil
    mine = tmp_path/'mine'; shutil.copytree(COLLECTION, mine)
    run = RunDir(tmp_path/'run', get_preset('tiny'))
    built = prepare_data(run, mine, workers=1, already_cropped=True).meta['built']
    (run.stage('style')/'metric.safetensors').write_bytes(b'')     # a stand-in for a trained stage
    shutil.copy(mine/'ink_wash'/'000.jpg', mine/'ink_wash'/'new.jpg')
    assert prepare_data(run).meta['built'] == built                 # not asked to look again: the cache as it is
    with pytest.raises(ValueError, match='changed since run .* was prepared'): prepare_data(run, mine)
    cfg = json.loads((run.path/'config.json').read_text()); cfg.pop('data')
    (run.path/'config.json').write_text(json.dumps(cfg))             # a run prepared before runs recorded their data
    assert recorded_data(run)['source'] == str(mine.resolve()) and recorded_data(run)['already_cropped'] is True
    assert prepare_data(run).meta['built'] == built
    (mine/'ink_wash'/'new.jpg').unlink()
    meta = json.loads((run.data/'meta.json').read_text()); meta['key'].pop('image_root'); meta['key']['code'] = 'older'
    (run.data/'meta.json').write_text(json.dumps(meta))               # a cache an earlier version built from the same files
    assert prepare_data(run, mine, already_cropped=True).meta['built'] == built
