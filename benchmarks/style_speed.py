"""Training speed of the style encoder (images per second), per method, at a preset (default `cpu`).

    python benchmarks/style_speed.py [--preset cpu] [--steps 10]

Measures optimiser steps on random Lab batches of the preset's batch size, so the number is the
network's and the loss's cost, not the data loader's.
"""
import argparse, time

import torch

from animestyle.core import get_preset, seed_everything
from animestyle.layers import param_count
from animestyle.style import StyleModel


def bench(p, method, nested, steps, warmup=2):
    seed_everything(0)
    C = p.synth_artists
    model = StyleModel(p, torch.full((C,), 100.), method, nested)
    opt = torch.optim.Adam(model.parameters(), p.style_lr)
    x = torch.randn(p.style_bs, 3, p.image_size, p.image_size) * 0.4
    y = torch.arange(p.style_bs) % C
    for i in range(warmup + steps):
        if i == warmup: t = time.perf_counter()
        loss = model.loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    return steps * p.style_bs / (time.perf_counter() - t), param_count(model.encoder)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu')
    ap.add_argument('--steps', type=int, default=10)
    a = ap.parse_args()
    p = get_preset(a.preset)
    print(f"preset {p.name}: {p.image_size} px, S features {p.style_features}, blocks {p.style_blocks}, "
          f"D={p.style_dim}, batch {p.style_bs}, torch threads {torch.get_num_threads()}")
    for method, nested in [('centres', True), ('softmax', True), ('softmax', False), ('pairs', True)]:
        ips, n = bench(p, method, nested, a.steps)
        print(f"{method:8s} nested={str(nested):5s}  {ips:7.1f} training images/s  (S: {n/1e6:.2f} M parameters)")


if __name__ == '__main__': main()
