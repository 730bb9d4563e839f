"""Does the style encoder's held-out accuracy grow with images per artist? The metric model (eqs. 2 + 3) trained
with `fit_style` at a preset (default `cpu`) on synthetic sets of several sizes, everything else unchanged.

    python benchmarks/style_data_scaling.py --per-artist 100,200,400 --json out.json

`--flip off` trains without the mirrored batches the `cpu` preset uses (`style_flip`).

For each size: held-out (split 'test') nearest-centre accuracy at d = 1, 2, d_style and D, the eq. 10 ratio at
d_style, the training-image accuracy at d_style (the generalisation gap), epochs, and wall time. The `cpu`
preset draws 100 images per artist (80 for training); the paper's collection averages 166 per artist.
"""
import argparse, json, os, tempfile, time
from pathlib import Path

import torch

from animestyle.core import RunDir, default_device, get_preset
from animestyle.data.loaders import prepare_data, style_dls
from animestyle.style import embed, fit_style, prefix_accuracy, style_curves


def one(preset, n, method, root, workers, flip=None, seed=42):
    p = get_preset(preset, synth_per_artist=n, **({} if flip is None else dict(style_flip=flip)))
    run = RunDir(Path(root)/f'run{n}', p, seed=seed)
    t = time.perf_counter(); cache = prepare_data(run, workers=workers); t_data = time.perf_counter()-t
    t = time.perf_counter()
    model, hist = fit_style(run, method, True, cache=cache)
    t_fit = time.perf_counter()-t
    c = style_curves({'m': model}, cache)
    z, y = embed(model, style_dls(cache, 128, device=next(model.parameters()).device).train.new(shuffle=False, drop_last=False))
    train_acc = prefix_accuracy(model.to('cpu').scores, z, y)
    d, D = p.d_style, p.style_dim
    m = cache.manifest
    return dict(per_artist=n, method=method, style_flip=p.style_flip, seed=seed, train_images=int((m.split == 'train').sum()),
                test_images=int((m.split == 'test').sum()), data_s=round(t_data, 1), fit_s=round(t_fit, 1),
                epochs=len(hist), best_epoch=int(max(hist, key=lambda h: h.get(f'acc@{d}', 0))['epoch']) if hist else None,
                acc_1=float(c['acc m'][1]), acc_2=float(c['acc m'][2]), acc_d=float(c['acc m'][d]), acc_D=float(c['acc m'][D]),
                ratio_eq10_d=float(c['ratio m'][d]), train_acc_d=float(train_acc[d-1]),
                chance=1/p.synth_artists, device=str(default_device()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--per-artist', default='100,200,400')
    ap.add_argument('--method', default='centres'); ap.add_argument('--workers', type=int, default=None)
    ap.add_argument('--root', default=''); ap.add_argument('--json', default='')
    ap.add_argument('--flip', choices=('preset', 'on', 'off'), default='preset', help="mirror half of each training batch (the preset's style_flip)")
    ap.add_argument('--seed', type=int, default=42, help='the run seed (initial weights, batch order, mirrored images)')
    a = ap.parse_args()
    root = a.root or tempfile.mkdtemp(prefix='animestyle-scaling-')
    out = []
    for n in map(int, a.per_artist.split(',')):
        r = one(a.preset, n, a.method, root, a.workers, None if a.flip == 'preset' else a.flip == 'on', a.seed); out.append(r)
        print(f"{n:4d}/artist ({r['train_images']} train, {r['test_images']} test): held-out acc d=1 {r['acc_1']:.3f} "
              f"d=2 {r['acc_2']:.3f} d={get_preset(a.preset).d_style} {r['acc_d']:.3f} D {r['acc_D']:.3f}; train acc {r['train_acc_d']:.3f}; "
              f"eq10 {r['ratio_eq10_d']:.4f}; {r['epochs']} epochs (best {r['best_epoch']}) in {r['fit_s']}s", flush=True)
        if a.json: Path(a.json).write_text(json.dumps(dict(preset=a.preset, date=time.strftime('%Y-%m-%d'), runs=out), indent=1))


if __name__ == '__main__': main()
