"""The data path against the training step: how fast each stage's loader serves batches from the image cache, and how
fast that stage's training step consumes them, at the `cpu` (64 px) and `paper` (256 px) presets, in one process.

    python benchmarks/loader_speed.py [--presets cpu,paper] [--stages style,content,gan] [--json out.json]
    python benchmarks/loader_speed.py --device cuda --steps 20 --repeats 3     # on a GPU

For each stage the loader is the stage's own training loader (`CacheDL`: uint8 memmap -> device -> Lab), built by
its Learner, with its batch size and, for the style stage, its artist-balanced batches (eq. 1). The step is the plain
PyTorch step of `loop_overhead.py` (the same model, loss and optimiser as the Learner), fed batches that are already
on the device, so it measures what training consumes and nothing of the loader. The loader is timed alone, reading
and converting batches and nothing else. Each repeat times `--steps` batches after `--warmup`; the medians are
compared. The loader and the step run one after the other in one process (num_workers=0, as the stages train), so a
loader `k` times faster than the step costs the training loop 1/(k+1) of its time: the target is k >= 5.
The cache holds random pixels: neither speed depends on what the images show.
"""
import argparse, json, os, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from animestyle.data.loaders import ImageCache


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


def loader_time(dl, warmup, steps, sync):
    "Seconds for `steps` batches of `dl` after `warmup`, the loader alone."
    it, t0 = iter(dl), None
    for i in range(warmup + steps):
        next(it)
        if i + 1 == warmup: sync(); t0 = time.perf_counter()
    sync()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--presets', default='cpu,paper'); ap.add_argument('--stages', default='style,content,gan')
    ap.add_argument('--steps', type=int, default=0, help='timed batches per repeat (default: 20 at 64 px, 3 at 256 px on the CPU)')
    ap.add_argument('--warmup', type=int, default=2); ap.add_argument('--repeats', type=int, default=0, help='default: 3 at 64 px, 1 at 256 px on the CPU')
    ap.add_argument('--device', default='cpu'); ap.add_argument('--json', default='')
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loop_overhead import STAGES, plain_time, sync  # the stages' plain steps, shared with the overhead benchmark
    from animestyle.core import RunDir, get_preset
    dev = torch.device(a.device)
    out = dict(device=str(dev), gpu=torch.cuda.get_device_name() if dev.type == 'cuda' else None, date=time.strftime('%Y-%m-%d'),
               torch=torch.__version__, threads=torch.get_num_threads(), cpus=os.cpu_count(), results=[])
    print(f'torch {torch.__version__} on {dev}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}', flush=True)
    tmp = Path(tempfile.mkdtemp(prefix='animestyle-loader-'))
    for preset in a.presets.split(','):
        base = get_preset(preset)
        slow = dev.type == 'cpu' and base.image_size > 64
        steps, repeats = a.steps or (3 if slow else 20), a.repeats or (1 if slow else 3)
        cache = random_cache(tmp/preset/'cache', 1024 if slow else 2048, base.image_size)
        p = get_preset(preset, synth_artists=len(cache.artists))
        run = RunDir(tmp/preset/'run', p)
        for name in a.stages.split(','):
            learn, _, _, step, model = STAGES[name](run, cache, tmp/preset/name, dev)
            dl = learn.dls.train; bs = dl.bs; model.train()
            it = iter(dl)
            batches = [tuple(t.clone() for t in next(it)) for _ in range(a.warmup + steps)]  # on the device, converted
            del it
            t_load, t_step = [], []
            for r in range(repeats):
                for which in (('loader', 'step') if r % 2 == 0 else ('step', 'loader')):
                    if which == 'loader': t_load.append(loader_time(dl, a.warmup, steps, sync))
                    else: t_step.append(plain_time(step, batches, a.warmup, steps))
            ml, ms = statistics.median(t_load), statistics.median(t_step)
            r = dict(preset=preset, size=p.image_size, stage=name, bs=bs, steps=steps, repeats=repeats, loader_s=t_load, step_s=t_step,
                     loader_img_s=steps * bs / ml, step_img_s=steps * bs / ms, ratio=ms / ml, load=os.getloadavg()[0])
            out['results'].append(r)
            print(f"{preset:5s} {p.image_size:3d} px  {name:8s} bs {bs:3d}: loader {r['loader_img_s']:8.1f} img/s, "
                  f"step consumes {r['step_img_s']:7.1f} img/s, loader/step {r['ratio']:6.1f}x "
                  f"({'meets' if r['ratio'] >= 5 else 'BELOW'} 5x; median of {repeats}, load {r['load']:.2f})", flush=True)
            if a.json: Path(a.json).write_text(json.dumps(out, indent=1))
            del learn, model, batches


if __name__ == '__main__': main()
