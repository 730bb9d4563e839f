"""One optimiser step: fastai's own optimisers against the PyTorch ones every stage now builds (`training.opt_func`).

    python benchmarks/opt_speed.py [--preset cpu] [--steps 30] [--repeats 5] [--json out.json]

For each stage's trainable parameters at the preset's sizes (style: S with its centres and h_d; content: Enc + Dec;
gan: G, and the three-network consortium D) it times `opt.step()` on fixed random gradients, for fastai's
`Adam`/`RMSProp` (a Python loop over the parameters) and for `opt_func(name)` (PyTorch's fused Adam, or RMSprop over
all tensors at once, in fastai's `OptimWrapper`), and prints the median milliseconds per step of `--repeats` runs
and their ratio. Both make the same update (checked in `00_core`); only the cost differs.
"""
import argparse, json, statistics, time
from pathlib import Path

import torch
from fastai.optimizer import Adam, RMSProp

from animestyle.core import get_preset
from animestyle.training import opt_func
from animestyle.layers import ContentDecoder, ContentEncoder, Generator, StyleEncoder
from animestyle.gan import MultiScaleDiscriminator
from animestyle.style import StyleModel

FASTAI = dict(adam=Adam, rmsprop=RMSProp)


def stage_params(p):
    "Each stage's trainable parameters, with the optimiser Table 2 gives it."
    style = StyleModel(p, torch.full((p.synth_artists,), 80.)).parameters()
    content = [*ContentEncoder(p).parameters(), *ContentDecoder(p).parameters()]
    return dict(style=(p.style_opt, list(style)), content=(p.content_opt, content),
                gan_G=(p.gan_opt, list(Generator(p).parameters())), gan_D=(p.gan_opt, list(MultiScaleDiscriminator(p).parameters())))


def time_steps(make, params, steps, repeats):
    "Median ms per `opt.step()` over `repeats` runs of `steps` steps, after 3 warm-up steps."
    ps = [torch.nn.Parameter(q.detach().clone()) for q in params]
    g = torch.Generator().manual_seed(0)
    for q in ps: q.grad = torch.randn(q.shape, generator=g)
    opt = make(ps)
    for _ in range(3): opt.step()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps): opt.step()
        ts.append((time.perf_counter() - t) / steps * 1e3)
    return statistics.median(ts), ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--json', default='')
    a = ap.parse_args()
    p = get_preset(a.preset)
    out = dict(preset=p.name, date=time.strftime('%Y-%m-%d'), torch=torch.__version__, threads=torch.get_num_threads(), stages={})
    print(f'preset {p.name}, torch {torch.__version__}, {torch.get_num_threads()} threads; {a.steps} steps x {a.repeats} repeats')
    for name, (opt, params) in stage_params(p).items():
        n = sum(q.numel() for q in params)
        fa, fa_all = time_steps(lambda ps: FASTAI[opt](ps, lr=1e-4, wd=0.), params, a.steps, a.repeats)
        pt, pt_all = time_steps(lambda ps: opt_func(opt)(ps, lr=1e-4), params, a.steps, a.repeats)
        out['stages'][name] = dict(opt=opt, tensors=len(params), params=n, fastai_ms=fa, torch_ms=pt, speedup=fa / pt,
                                   fastai_runs=fa_all, torch_runs=pt_all)
        print(f'{name:8s} {opt:8s} {len(params):4d} tensors {n/1e6:7.2f} M params: fastai {fa:8.2f} ms, '
              f'opt_func {pt:8.2f} ms per step ({fa/pt:.1f}x)', flush=True)
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
