"""What checking the image cache's checksums costs, against loading the cache: a 64 px cache of 100k images by default.

    python benchmarks/cache_verify.py [--n 100000] [--size 64] [--dir /tmp] [--repeats 3] [--keep]

The cache is built by `build_cache` from random pixels (`cache_growth.random_plan`: the same chunks, assembly and
checksums as any source). Then, with the file in the page cache, each repeat times in this process:

- `open`: `ImageCache(path)`, which reads the manifest and checks its SHA-1;
- `read`: one pass over every image as the training loaders read them (`CacheDataset.batch`, shuffled batches of 256),
  with the block checks switched off;
- `read+check`: the same pass on a freshly opened cache, each block checked when it is first read;
- `verify`: `ImageCache.verify()` alone, every block at once.

Loading is `open + read`; the cost of checking is `read+check - read` plus the manifest's hash, reported as a ratio of
loading. Medians of the repeats. For scale, the last line extrapolates from 20 batches what the loaders' conversion of
one pass to Lab costs on the CPU (`rgb_to_lab`), which every epoch adds to the read. `--keep` keeps the cache.
"""
import argparse, hashlib, shutil, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cache_growth import random_plan


def one_pass(cache, bs=256, seed=0):
    from animestyle.data.loaders import CacheDataset
    ds = CacheDataset(cache, np.arange(len(cache)))
    order = np.random.default_rng(seed).permutation(len(ds))
    for i in range(0, len(order), bs): ds.batch(order[i:i + bs])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=100_000); ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--dir', default=tempfile.gettempdir()); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--keep', action='store_true')
    a = ap.parse_args()
    from animestyle.data.loaders import ImageCache, build_cache
    dest = Path(a.dir)/f'cache-verify-{a.n}-{a.size}'
    t0 = time.perf_counter(); build_cache(dest, random_plan(a.n, a.size), workers=1, chunk=4096)
    print(f"built {a.n} images of {a.size} px ({(dest/'images.u8').stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")
    one_pass(ImageCache(dest).verify())  # warm the page cache
    t = {k: [] for k in ('open', 'manifest_hash', 'read', 'read+check', 'verify')}
    for r in range(a.repeats):
        s = time.perf_counter(); c = ImageCache(dest); t['open'].append(time.perf_counter() - s)
        s = time.perf_counter(); hashlib.sha1((dest/'manifest.csv').read_bytes()).hexdigest(); t['manifest_hash'].append(time.perf_counter() - s)
        c.images._chk = None  # unchecked: what loading costs without checksums
        s = time.perf_counter(); one_pass(c, seed=r); t['read'].append(time.perf_counter() - s)
        c = ImageCache(dest)
        s = time.perf_counter(); one_pass(c, seed=r); t['read+check'].append(time.perf_counter() - s)
        c = ImageCache(dest)
        s = time.perf_counter(); c.verify(); t['verify'].append(time.perf_counter() - s)
    m = {k: statistics.median(v) for k, v in t.items()}
    for k, v in m.items(): print(f"{k:>14}: {v:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in t[k])})")
    load = m['open'] + m['read']
    cost = max(0., m['read+check'] - m['read']) + m['manifest_hash']
    print(f"loading (open + one pass): {load:.3f} s; checking: {cost:.3f} s = {100 * cost / load:.1f}% of loading "
          f"(verify() alone: {100 * m['verify'] / load:.1f}%)")
    import torch
    from animestyle.core import rgb_to_lab
    x = torch.from_numpy(np.array(ImageCache(dest).images[:256])).permute(0, 3, 1, 2).contiguous(); rgb_to_lab(x)
    s = time.perf_counter()
    for _ in range(20): rgb_to_lab(x)
    lab = (time.perf_counter() - s) / 20 * a.n / 256
    print(f"one pass converted to Lab on the CPU: about {lab:.1f} s more; checking is {100 * cost / (load + lab):.2f}% of that epoch's loading")
    if not a.keep: shutil.rmtree(dest)


if __name__ == '__main__': main()
