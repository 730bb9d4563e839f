"""The style encoder trained through its fastai Learner (callbacks, metrics, checkpoints) at a preset, on a small
synthetic set: wall time per epoch and training images/s, beside the plain-loop numbers of gpu_bench.py.

    python benchmarks/gpu_learner.py --preset paper --artists 16 --per-artist 48
"""
import argparse, json, tempfile, time
from pathlib import Path

import torch

from animestyle.core import RunDir, default_device, get_preset
from animestyle.data.loaders import prepare_data
from animestyle.style import fit_style


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='paper'); ap.add_argument('--artists', type=int, default=16)
    ap.add_argument('--per-artist', type=int, default=48); ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    p = get_preset(a.preset, synth_artists=a.artists, synth_per_artist=a.per_artist, style_epochs=a.epochs)
    run = RunDir(Path(tempfile.mkdtemp())/'run', p)
    t = time.perf_counter(); cache = prepare_data(run); t_data = time.perf_counter()-t
    n_train = int((cache.manifest.split == 'train').sum())
    t = time.perf_counter()
    _, hist = fit_style(run, 'centres', True, epochs=a.epochs, patience=a.epochs, cache=cache)
    if default_device().type == 'cuda': torch.cuda.synchronize()
    dt = time.perf_counter()-t
    mem = torch.cuda.max_memory_allocated()/2**30 if torch.cuda.is_available() else float('nan')
    r = dict(preset=p.name, image_size=p.image_size, images=len(cache), n_train=n_train, data_s=t_data,
             epochs=len(hist), train_s=dt, train_images_per_s=n_train*len(hist)/dt, peak_mem_gib=mem, history=hist)
    print(f"data {len(cache)} images at {p.image_size} px in {t_data:.1f}s; style Learner: {len(hist)} epochs of "
          f"{n_train} images in {dt:.1f}s = {r['train_images_per_s']:.1f} img/s (incl. per-epoch evaluation), "
          f"peak {mem:.1f} GiB")
    if a.json: Path(a.json).write_text(json.dumps(r, indent=1, default=str))


if __name__ == '__main__': main()
