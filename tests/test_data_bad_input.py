"Bad input for real-data ingestion: every bad item is skipped with a counted reason, odd modes are converted, and nothing is lost."
import io, json, logging, os, re, struct, zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animestyle.data.ingest import (BadImage, NoImagesError, SourceError, check_options, detect_faces, detect_format, load_items,
                                    plan_source, read_image, scan_danbooru, scan_folder)
from animestyle.data.loaders import build_cache
from animestyle.data.synthetic import draw_portrait, make_artists, make_characters

SIZE = 32


def _portrait(i, size=64):
    "A distinct, valid picture (a synthetic portrait): artist i % 3 draws character i."
    return draw_portrait(make_artists(3).iloc[i % 3], make_characters(40).iloc[i % 40], size=size, seed=i)


def _png_header_only(w, h):
    "A tiny PNG whose header claims w x h pixels: a decompression bomb that Pillow must refuse before decoding."
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 1024)) + chunk(b'IEND', b'')


def _bad_folder(root):
    "A folder-per-artist collection with one of every kind of bad and odd file. Returns the expected skip counts."
    good = root/'good'; good.mkdir(parents=True)
    for i in range(12): Image.fromarray(_portrait(i)).save(good/f'{i:02d}.png')
    odd = root/'odd'; odd.mkdir()
    base = Image.fromarray(_portrait(20))
    base.convert('L').save(odd/'gray.png')
    base.convert('P').save(odd/'palette.png')
    base.convert('RGBA').save(odd/'rgba.png')
    base.convert('CMYK').save(odd/'cmyk.jpg')
    Image.fromarray(np.asarray(base.convert('L'), np.uint16) * 257).save(odd/'gray16.png')
    base.save(odd/'webp.WEBP')
    for i in range(21, 27): Image.fromarray(_portrait(i)).save(odd/f'{i}.jpg', quality=95)
    bad = root/'bad'; bad.mkdir()
    for i in range(30, 40): Image.fromarray(_portrait(i)).save(bad/f'{i}.png')
    (bad/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(500))
    buf = io.BytesIO(); Image.fromarray(_portrait(3)).save(buf, 'JPEG'); (bad/'truncated.jpg').write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    (bad/'text.jpg').write_text('this is not a picture')
    (bad/'empty.png').write_bytes(b'')
    Image.new('RGB', (1, 1), 'red').save(bad/'one_pixel.png')
    (bad/'bomb.png').write_bytes(_png_header_only(40000, 40000))
    (bad/'notes.txt').write_text('a note')
    os.symlink('self_loop.png', bad/'self_loop.png')              # a link to itself
    os.symlink('..', bad/'loop_dir')                              # a folder loop back to the collection
    (root/'empty_artist').mkdir()
    Image.fromarray(_portrait(2)).save(root/'stray.png')          # an image outside any artist folder
    # duplicates: the same bytes twice, and the same pixels saved as another file
    Image.fromarray(_portrait(0)).save(good/'dup_bytes.png')
    Image.fromarray(_portrait(1)).save(good/'dup_pixels.png', compress_level=1)
    return {'corrupt or truncated': 2, 'not an image': 1, 'empty file': 1, 'too small': 1, 'decompression bomb': 1,
            'symlink loop': 2, 'not an image file type': 1, 'empty artist folder': 1, 'not in an artist folder': 1,
            'vanished before reading': 1}


def test_read_image_kinds(tmp_path):
    img = Image.fromarray(_portrait(5))
    img.convert('L').save(tmp_path/'g.png'); img.convert('CMYK').save(tmp_path/'c.jpg')
    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(tmp_path/'i16.png')
    rgba = Image.new('RGBA', (40, 40), (255, 0, 0, 0)); rgba.save(tmp_path/'clear.png')
    for name in ('g.png', 'c.jpg', 'i16.png', 'clear.png'): assert read_image(tmp_path/name).mode == 'RGB'
    # 16-bit is scaled to 8 bits, not clipped to white; transparent pixels become white, not red or black
    assert abs(int(np.asarray(read_image(tmp_path/'i16.png'))[0, 0, 0]) - round(30000 / 65535 * 255)) <= 1
    assert (np.asarray(read_image(tmp_path/'clear.png')) == 255).all()
    (tmp_path/'bomb.png').write_bytes(_png_header_only(40000, 40000))
    with pytest.raises(BadImage, match='decompression bomb'): read_image(tmp_path/'bomb.png')
    with pytest.raises(BadImage, match='vanished'): read_image(tmp_path/'gone.png')


def test_folder_corpus(tmp_path):
    root = tmp_path/'collection'
    expected = _bad_folder(root)
    plan = plan_source(root, size=SIZE, seed=0, already_cropped=True, min_per_artist=5, min_test=2)
    (root/'bad'/'30.png').unlink()                                 # vanishes between listing and reading
    cache = build_cache(tmp_path/'cache', plan, workers=2, chunk=5)
    assert cache.meta['skipped'] == expected
    m = cache.manifest
    # every good and every converted file is in the cache; nothing else
    assert sorted(m.artist.unique()) == ['bad', 'good', 'odd']
    assert (m.artist == 'good').sum() == 14 and (m.artist == 'odd').sum() == 12 and (m.artist == 'bad').sum() == 9
    odd = {Path(s).name: i for i, s in zip(m.index, m.source) if '/odd/' in s}
    gray = cache.images[odd['gray.png']].astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    g16 = cache.images[odd['gray16.png']].astype(int)
    assert abs(g16.mean() - gray.mean()) < 1.5                      # 16 bits scaled, not clipped to white
    # skipped.csv lists every skipped item with its reason
    import pandas as pd
    sk = pd.read_csv(cache.path/'skipped.csv')
    assert sk.reason.value_counts().to_dict() == expected
    assert not list(tmp_path.glob('.cache.partial'))


def test_duplicates_stay_on_one_side(tmp_path):
    root = tmp_path/'dups'
    for a in range(2):
        (root/f'a{a}').mkdir(parents=True)
        for i in range(30): Image.fromarray(_portrait(a * 30 + i, 48)).save(root/f'a{a}'/f'{i:02d}.png')
    for i in range(6):                                             # 6 pictures, each also saved as 3 other files
        src = Image.open(root/'a0'/f'{i:02d}.png')
        src.save(root/'a0'/f'{i:02d}_copy.png')
        src.save(root/'a0'/f'{i:02d}_recoded.png', compress_level=0)
        src.save(root/'a1'/f'from_a0_{i:02d}.png')                 # the same picture under another artist
    for seed in range(4):
        cache = build_cache(tmp_path/f'c{seed}', plan_source(root, size=SIZE, seed=seed, already_cropped=True, min_per_artist=5))
        m = cache.manifest
        sides = m.groupby('pixel_hash').split.nunique()
        assert (sides == 1).all(), m[m.pixel_hash.isin(sides.index[sides > 1])]
        assert (m.groupby('pixel_hash').size() == 4).sum() == 6


def _post(pid, artist=None, schema=2017, **kw):
    if schema == 2017:
        tags = [dict(id='1', name='1girl', category='0')] + ([dict(id='2', name=artist, category='1')] if artist else [])
        return dict(id=str(pid), file_ext=kw.pop('file_ext', 'png'), tags=tags, is_deleted=kw.pop('deleted', False), is_banned=False, **kw)
    return dict(id=pid, file_ext=kw.pop('file_ext', 'png'), tag_string_artist=artist or '', is_deleted=kw.pop('deleted', False), **kw)


def _danbooru(root):
    "A small Danbooru release: both metadata schemas, original/ and 512px/ images, and bad lines."
    lines17, lines21 = [], []
    for pid in range(100, 124):
        artist = f'artist_{pid % 2}'
        Image.fromarray(_portrait(pid)).save(_mk(root/'original'/f'{pid % 1000:04d}'/f'{pid}.png'))
        lines17.append(json.dumps(_post(pid, artist, 2017)))
    for pid in range(2000, 2012):
        Image.fromarray(_portrait(pid)).save(_mk(root/'512px'/f'{pid % 1000:04d}'/f'{pid}.jpg'))
        lines21.append(json.dumps(_post(pid, 'artist_2', 2021, file_ext='png')))
    lines17 += ['{"id": "900", "tags": [', 'not json at all', json.dumps(_post(901, 'artist_0', 2017, deleted=True)),
                json.dumps(_post(902, 'artist_0', 2017)),                       # no image file
                json.dumps(_post(903, None, 2017))]                            # no artist tag
    lines21 += [json.dumps(dict(_post(904, 'artist_2', 2021), is_banned=True)), json.dumps(_post(905, 'a b', 2021)),
                json.dumps(_post(906, 'artist_2', 2021, file_ext='mp4'))]
    (root/'metadata').mkdir(parents=True)
    (root/'metadata'/'2017.json').write_text('\n'.join(lines17) + '\n')
    (root/'metadata'/'2021.jsonl').write_text('\n'.join(lines21) + '\n')
    return {'malformed JSON line': 2, 'deleted or banned': 2, 'missing image file': 1, 'no artist tag': 1,
            'several artist tags': 1, 'not an image post': 1}


def _mk(p):
    p.parent.mkdir(parents=True, exist_ok=True); return p


def test_danbooru_corpus(tmp_path):
    expected = _danbooru(tmp_path)
    items, skipped = scan_danbooru(tmp_path/'metadata')
    assert len(items) == 36
    assert sorted({a['artist'] for a in items}) == ['artist_0', 'artist_1', 'artist_2']
    assert any('/512px/' in it['path'] for it in items) and any('/original/' in it['path'] for it in items)
    plan = plan_source(tmp_path/'metadata', size=SIZE, already_cropped=True, min_per_artist=12, min_test=2)
    cache = build_cache(tmp_path/'cache', plan, workers=1)
    assert cache.meta['skipped'] == expected
    assert len(cache) == 36 and cache.meta['n_artists'] == 3


def test_artist_filter_and_no_images(tmp_path):
    root = tmp_path/'few'
    for a, n in (('many', 12), ('few', 4)):
        (root/a).mkdir(parents=True)
        for i in range(n): Image.fromarray(_portrait(i + (0 if a == 'many' else 50))).save(root/a/f'{i}.png')
    cache = build_cache(tmp_path/'c', plan_source(root, size=SIZE, already_cropped=True, min_per_artist=10, min_test=2))
    assert cache.artists == ['many'] and cache.meta['skipped'] == {'artist with fewer than 10 works': 4}
    junk = tmp_path/'junk'; (junk/'someone').mkdir(parents=True); (junk/'someone'/'x.png').write_text('nope')
    with pytest.raises(NoImagesError, match=r'no usable images in .*junk.*not an image 1'):
        build_cache(tmp_path/'c2', plan_source(junk, size=SIZE, already_cropped=True))
    assert not (tmp_path/'c2').exists()
    with pytest.raises(SourceError): plan_source(tmp_path/'missing', size=SIZE)


def test_animeface_finds_drawn_faces():
    "AnimeFace 2009 (through the `animeface` package, Pillow < 12) detects the synthetic portraits' faces."
    found = 0
    for i in range(6):
        faces = detect_faces(Image.fromarray(draw_portrait(make_artists(6).iloc[i], make_characters(6).iloc[i], size=256)))
        if faces:
            found += 1
            f = faces[0]
            x, y, w, h = f['box']
            assert f['likelihood'] > 0.5 and w > 60
            assert f['left_eye'][0] > f['right_eye'][0]            # the character's left eye is on the picture's right
            assert x < f['right_eye'][0] < f['left_eye'][0] < x + w and y < f['left_eye'][1] < y + h
    assert found == 6


def test_detection_path_crops_faces(tmp_path):
    root = tmp_path/'drawn'
    (root/'a').mkdir(parents=True)
    for i in range(3): Image.fromarray(_portrait(i, 256)).save(root/'a'/f'{i}.png')
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(root/'a'/'blank.png')
    crops, recs = load_items([dict(path=str(p), artist='a') for p in sorted((root/'a').iterdir())], size=SIZE)
    assert crops.shape == (3, SIZE, SIZE, 3)
    assert [r.get('skip') for r in recs].count('no face found') == 1
    assert all(r['likelihood'] > 0.5 for r in recs if 'skip' not in r)


def _artists(root, n=2, per=3, size=48):
    for a in range(n):
        (root/f'artist_{a}').mkdir(parents=True, exist_ok=True)
        for i in range(per): Image.fromarray(_portrait(a * per + i, size)).save(root/f'artist_{a}'/f'{i}.jpg')
    return root


def test_format_is_read_from_the_layout(tmp_path):
    "Loose files beside artist folders are skipped, not read as Danbooru; Danbooru is metadata without artist folders."
    mine = _artists(tmp_path/'mine')
    (mine/'collection.json').write_text('{\n  "title": "my crops"\n}\n')     # a pretty-printed JSON: not JSON lines
    (mine/'README.md').write_text('notes'); (mine/'list.csv').write_text('a,b\n')
    (mine/'.thumbs').mkdir(); Image.fromarray(_portrait(7, 16)).save(mine/'.thumbs'/'t.png'); (mine/'.DS_Store').write_bytes(b'\0')
    assert detect_format(mine) == 'folder'
    items, skipped = scan_folder(mine)
    assert len(items) == 6 and sorted(r for _, r in skipped) == ['hidden'] * 2 + ['not in an artist folder'] * 3
    cache = build_cache(tmp_path/'c', plan_source(mine, size=SIZE, already_cropped=True, min_per_artist=3, min_test=1))
    assert cache.meta['skipped'] == {'not in an artist folder': 3, 'hidden': 2} and len(cache) == 6 and cache.artists == ['artist_0', 'artist_1']
    _danbooru(tmp_path/'release')
    assert detect_format(tmp_path/'release') == detect_format(tmp_path/'release'/'metadata') == 'danbooru'
    assert detect_format(tmp_path/'release'/'metadata'/'2021.jsonl') == 'danbooru'
    cache = build_cache(tmp_path/'d', plan_source(tmp_path/'release', size=SIZE, already_cropped=True, min_per_artist=12, min_test=2))
    assert len(cache) == 36                                         # the release's root: original/ and 512px/ are not artists
    with pytest.raises(SourceError, match='not Danbooru metadata'): detect_format(mine/'README.md')


def test_an_ambiguous_source_asks_for_format(tmp_path):
    both = _artists(tmp_path/'both')
    (both/'metadata').mkdir(); (both/'metadata'/'posts.jsonl').write_text(json.dumps(_post(1, 'x')) + '\n')
    with pytest.raises(SourceError, match=r'artist_0, artist_1.*metadata/.*--format folder or --format danbooru'): detect_format(both)
    with pytest.raises(SourceError, match='--format'): plan_source(both, size=SIZE)
    plan = plan_source(both, size=SIZE, format='folder', already_cropped=True)     # told which: read as told
    assert plan.key['kind'] == 'folder' and {t['artist'] for t in plan.tasks} == {'artist_0', 'artist_1'}
    tree = _artists(tmp_path/'tree'); (tree/'original'/'0000').mkdir(parents=True)
    Image.fromarray(_portrait(9)).save(tree/'original'/'0000'/'1000.png')
    with pytest.raises(SourceError, match='original/'): detect_format(tree)


@pytest.mark.parametrize('opt,value,says', [
    ('format', 'zip', 'format (--format) must be one of auto, folder, danbooru'), ('min_per_artist', 0, 'min_per_artist (--min-per-artist)'),
    ('min_per_artist', 2.5, 'a whole number'), ('threshold', 1.2, 'between 0 and 1'), ('margin', 0, 'above 0'),
    ('max_faces', 0, 'max_faces (--max-faces)'), ('test_frac', 1.0, 'strictly between 0 and 1'), ('min_test', -1, '0 or more'),
    ('image_root', '/nowhere/at/all', 'is not a folder')])
def test_bad_options_are_one_line_errors(tmp_path, opt, value, says):
    mine = _artists(tmp_path/'mine')
    with pytest.raises(ValueError, match=re.escape(says)) as e: plan_source(mine, size=SIZE, **{opt: value})
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(ValueError): check_options(**{opt: value})


def test_most_faces_missing_is_a_warning_with_advice(tmp_path, caplog):
    "Face detection that loses most of a collection but not all says how many and what to do, and keeps what it found."
    root = tmp_path/'mixed'; (root/'a').mkdir(parents=True)
    for i in range(2): Image.fromarray(_portrait(i, 256)).save(root/'a'/f'big{i}.png')      # AnimeFace finds these
    for i in range(3): Image.fromarray(_portrait(10 + i, 40)).save(root/'a'/f'crop{i}.png')  # and not these
    with caplog.at_level(logging.WARNING, logger='animestyle.data'):
        cache = build_cache(tmp_path/'c', plan_source(root, size=SIZE, min_per_artist=1, min_test=1, max_faces=1))
    assert len(cache) == 2 and cache.meta['skipped'] == {'no face found': 3}
    assert 'AnimeFace found no face in 3 of 5 images' in caplog.text and 'add --already-cropped' in caplog.text
    assert 'advice' not in cache.meta
