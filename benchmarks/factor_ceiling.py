"""How much of each ground-truth factor do the pixels carry at a preset's image size? A supervised ceiling for the
content stage's probes: one small CNN, trained directly on the synthetic images with one head per factor (cross-entropy
for categorical factors, squared error for continuous ones), scored on the held-out split like the probes.

    python benchmarks/factor_ceiling.py --run runs/notebooks-cpu --epochs 15 --json out.json

A factor the ceiling cannot recover is not in the pixels at this resolution, whatever the content encoder does; a
factor the ceiling recovers and the content code's linear probe does not is one the VAE leaves out.
"""
import argparse, json, time
from pathlib import Path

import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

from animestyle.core import RunDir, get_preset, rgb_to_lab
from animestyle.data.loaders import prepare_data


def net(n_out, w=24):
    def blk(i, o): return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                        nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(blk(3, w), blk(w, 2*w), blk(2*w, 4*w), blk(4*w, 4*w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(4*w, n_out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', default='runs/notebooks-cpu'); ap.add_argument('--preset', default='cpu')
    ap.add_argument('--epochs', type=int, default=15); ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--prefix', default='content_'); ap.add_argument('--json', default='')
    a = ap.parse_args()
    torch.manual_seed(0)
    cache = prepare_data(RunDir(Path(a.run), get_preset(a.preset)))
    m = cache.manifest
    tr, te = np.flatnonzero(m.split.values == 'train'), np.flatnonzero(m.split.values == 'test')
    cols = [c for c in m.columns if c.startswith(a.prefix)]
    heads = []  # (column, n classes or 0, slice)
    k = 0
    for c in cols:
        v = m[c].values.astype(float)
        n = int(v.max()) + 1 if np.allclose(v, np.round(v)) and len(np.unique(v)) <= 64 else 0
        heads.append((c, n, slice(k, k + max(n, 1)))); k += max(n, 1)
    X = rgb_to_lab(torch.from_numpy(np.array(cache.images[:])).permute(0, 3, 1, 2))  # uint8 in: scaled from 0..255
    Y = torch.tensor(np.stack([m[c].values.astype(float) for c in cols], 1), dtype=torch.float32)
    mu, sd = Y[tr].mean(0), Y[tr].std(0).clamp_min(1e-6)
    model = net(k); opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(a.epochs * 0.7) * (len(tr) // a.bs)], 0.1)  # a tenth for the last 30%
    def loss_fn(out, y):
        return sum(F.cross_entropy(out[:, s], y[:, j].long()) if n else F.mse_loss(out[:, s.start], (y[:, j] - mu[j]) / sd[j])
                   for j, (c, n, s) in enumerate(heads))
    t0 = time.perf_counter()
    for ep in range(a.epochs):
        model.train(); perm = np.random.default_rng(ep).permutation(tr)
        for i in range(0, len(perm) - a.bs + 1, a.bs):
            b = perm[i:i + a.bs]; x = X[b]
            x = torch.roll(x, shifts=int(np.random.randint(-2, 3)), dims=3)  # small shifts: the framing varies anyway
            loss = loss_fn(model(x), Y[b]); opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        print(f'epoch {ep} loss {loss.item():.3f} (chance about 27) ({time.perf_counter() - t0:.0f}s)', flush=True)
    model.eval()
    with torch.no_grad(): out = torch.cat([model(X[te[i:i + 256]]) for i in range(0, len(te), 256)])
    res = {}
    for j, (c, n, s) in enumerate(heads):
        y = Y[te, j]
        if n:
            vals, counts = np.unique(Y[tr, j].numpy(), return_counts=True)
            res[c] = dict(metric='accuracy', ceiling=float((out[:, s].argmax(1) == y.long()).float().mean()),
                          chance=float((y.numpy() == vals[counts.argmax()]).mean()))
        else:
            pred = out[:, s.start] * sd[j] + mu[j]
            res[c] = dict(metric='r2', ceiling=float(1 - ((pred - y)**2).sum() / ((y - y.mean())**2).sum()), chance=0.)
    probes = {}
    mp = Path(a.run)/'content'/'metrics.json'
    if mp.exists():
        mj = json.loads(mp.read_text()); probes = {**mj.get('content_factor_probes', {}), **mj.get('style_factor_probes', {})}
    print(f"{'factor':28s} {'metric':8s} {'chance':>7s} {'ceiling':>8s} {'content probe':>14s}")
    for c, r in res.items():
        r['content_probe'] = probes.get(c, {}).get('from_content')
        cp = f"{r['content_probe']:.3f}" if r['content_probe'] is not None else '-'
        print(f"{c:28s} {r['metric']:8s} {r['chance']:7.3f} {r['ceiling']:8.3f} {cp:>14s}")
    if a.json: Path(a.json).write_text(json.dumps(dict(run=a.run, preset=a.preset, epochs=a.epochs, date=time.strftime('%Y-%m-%d'),
                                                       seconds=round(time.perf_counter() - t0, 1), factors=res), indent=1))


if __name__ == '__main__': main()
