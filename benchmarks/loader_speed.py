"""How fast the DataLoaders serve batches from the image cache, at the `cpu` (64 px) and `paper` (256 px) sizes.

    python benchmarks/loader_speed.py [--n 4096] [--device cpu|cuda]

Each measurement iterates one epoch of `style_dls` (uint8 memmap -> device -> Lab) and prints images per second.
The cache holds random pixels: the loaders' speed does not depend on what the images show.
"""
import argparse, json, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from animestyle.core import default_device
from animestyle.data.loaders import ImageCache, all_dls, style_dls


def random_cache(folder, n, size, n_artists=32):
    "A finished cache of `n` random images, written in the cache format."
    folder = Path(folder); folder.mkdir(parents=True)
    arr = np.memmap(folder/'images.u8', np.uint8, 'w+', shape=(n, size, size, 3))
    rng = np.random.default_rng(0)
    for i in range(0, n, 512): arr[i:i + 512] = rng.integers(0, 256, arr[i:i + 512].shape, np.uint8)
    arr.flush(); del arr
    ids = np.arange(n) % n_artists
    split = np.where(np.arange(n) // n_artists % 10 == 0, 'test', 'train')
    pd.DataFrame(dict(artist=[f'artist_{i:02d}' for i in ids], artist_id=ids, split=split, source='random')).to_csv(folder/'manifest.csv', index=False)
    (folder/'images.json').write_text(json.dumps(dict(shape=[n, size, size, 3], dtype='uint8')))
    (folder/'meta.json').write_text(json.dumps(dict(key='benchmark', built='now')))
    return ImageCache(folder)


def epoch(dl, device):
    n, t = 0, time.perf_counter()
    for x, y in dl:
        n += len(x)
    if device.type == 'cuda': torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=4096, help='images in the 64 px cache (the 256 px one holds a quarter as many)')
    ap.add_argument('--device', default=None, help='default: the best available')
    a = ap.parse_args()
    device = torch.device(a.device) if a.device else default_device()
    with tempfile.TemporaryDirectory() as d:
        for preset, size, bs, n in (('cpu', 64, 64, a.n), ('paper', 256, 32, a.n // 4)):
            cache = random_cache(Path(d)/preset, n, size)
            for name, dls in (('style_dls', style_dls(cache, bs, device=device)), ('style_dls pk=4', style_dls(cache, bs, device=device, pk=4)),
                              ('all_dls', all_dls(cache, bs, device=device))):
                epoch(dls.train, device)  # warm up (page cache, kernels)
                print(f'{preset:5s} {size:3d} px  bs {bs:2d}  {name:15s} on {device.type}: {epoch(dls.train, device):8.0f} images/s')


if __name__ == '__main__': main()
