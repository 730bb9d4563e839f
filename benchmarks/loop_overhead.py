"""The fastai Learner's cost: the same model, data and number of steps through each stage's `Learner` (with the
project's callbacks) and through a plain PyTorch loop, in one process, interleaved, at the `cpu` preset.

    python benchmarks/loop_overhead.py [--steps 20] [--warmup 5] [--repeats 5] [--stages style,content,gan] [--json out.json]

Both loops read the same loader (`CacheDL`: uint8 memmap -> Lab on the device) over a cache of random 64 px images
(the numbers do not depend on what the images show) and run the same model (a copy of the Learner's, taken before training) with the same optimiser class:
  style    `style_learner` (eqs. 2 + 3, Adam) + the checkpoint and early stopping of `fit_style`
           vs  z = S(x); loss = model.loss(z, y); backward; torch.optim.Adam step
  content  `content_learner` (VAE with nested dropout, RMSprop) + its checkpoint and reconstruction callbacks
           vs  loss = ContentVAELoss(vae(x), x); backward; torch.optim.RMSprop step
  gan      `gan_learner` (GANTrainer alternating D and G steps, RMSprop) + samples, monitor and checkpoint callbacks
           vs  the same alternation written out, one batch per step
A step is one batch. Each repeat times `--steps` steps after `--warmup` steps, for the Learner (between two of its
after_batch events, so everything the Learner does per batch is inside) and for the plain loop; the order of the
two alternates between repeats, and the medians are compared. Per-epoch work (validation, checkpoints, figures)
is outside both: it is paid once per epoch, not per step.
"""
import argparse, copy, json, os, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import EarlyStoppingCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_speed import random_cache  # noqa: E402

from animestyle.core import RunDir, get_preset  # noqa: E402
from animestyle.data.loaders import all_dls  # noqa: E402


class StepTimer(Callback):
    "Time `steps` training batches after `warmup`, then stop the fit."
    order = 100
    def __init__(self, warmup, steps): self.warmup, self.steps = warmup, steps
    def before_fit(self): self.i, self.t0, self.dt = 0, None, None
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.warmup: self.t0 = time.perf_counter()
        if self.i == self.warmup + self.steps:
            self.dt = time.perf_counter() - self.t0
            raise CancelFitException()


def plain_time(step, dl, warmup, steps):
    "Run `step(batch, i)` over `dl` and time `steps` batches after `warmup`."
    it, t0 = iter(dl), None
    for i in range(warmup + steps):
        step(next(it), i)
        if i + 1 == warmup: t0 = time.perf_counter()
    return time.perf_counter() - t0


def style_stage(run, cache, folder):
    from animestyle.style import StyleCheckpoint, style_learner
    p = run.preset
    torch.manual_seed(0); learn = style_learner(run, cache, 'centres', True, device='cpu')
    mon = f'acc@{p.d_style}'
    cbs = [StyleCheckpoint(folder/'best.safetensors', folder/'last.safetensors', mon),
           EarlyStoppingCallback(monitor=mon, comp=np.greater, min_delta=1e-3, patience=2)]
    model = copy.deepcopy(learn.model)  # the same network, initialised the same way
    opt = torch.optim.Adam(model.parameters(), lr=p.style_lr)
    def step(b, i):
        x, y = b
        loss = model.loss(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    return learn, dict(lr=p.style_lr, wd=0.), cbs, step, model


def content_stage(run, cache, folder):
    from animestyle.content import (ContentCheckpoint, ContentVAELoss, SaveReconstructions, content_learner,
                                    heldout_images, style_stub)
    p = run.preset
    torch.manual_seed(0); S = style_stub(p)
    torch.manual_seed(0); learn = content_learner(run, cache, S, device='cpu')
    cbs = [ContentCheckpoint(folder/'ckpt.safetensors', 0, [], {}), SaveReconstructions(heldout_images(cache, device='cpu'), folder/'recon', 0)]
    vae = copy.deepcopy(learn.model).train()  # the same network, with the same data-dependent initialisation
    opt = torch.optim.RMSprop([q for q in vae.parameters() if q.requires_grad], lr=p.content_lr)
    loss_func = ContentVAELoss()
    def step(b, i):
        x = b[0]
        loss = loss_func(vae(x), x); loss.backward(); opt.step(); opt.zero_grad()
    return learn, dict(lr=p.content_lr, wd=0.), cbs, step, vae


def gan_stage(run, cache, folder):
    from animestyle.gan import (CondGAN, CondGANLoss, ContentCondition, GANCheckpoint, GANMonitor, GANSamples,
                                MultiScaleDiscriminator, StyleCondition, gan_learner, sample_codes)
    from animestyle.layers import ContentEncoder, Generator, StyleEncoder
    p = run.preset
    def make():
        torch.manual_seed(0)
        return CondGAN(Generator(p), MultiScaleDiscriminator(p),
                       StyleCondition(StyleEncoder(p), torch.zeros(p.d_style), torch.ones(p.d_style), p.d_style),
                       ContentCondition(ContentEncoder(p), p.d_content), p)
    gan = make()
    cbs = [GANSamples(folder/'samples', sample_codes(8, p, torch.Generator().manual_seed(0))),
           GANMonitor(np.random.default_rng(0).standard_normal((64, p.style_features[-1])).astype(np.float32)),
           GANCheckpoint(folder/'gan.safetensors')]
    learn = gan_learner(all_dls(cache, p.gan_bs, device='cpu'), gan, p)
    g2 = copy.deepcopy(gan)
    loss_func = CondGANLoss(g2, p.lambda_style, p.lambda_content)
    opt_d = torch.optim.RMSprop(g2.critic.parameters(), lr=p.gan_lr)
    opt_g = torch.optim.RMSprop(g2.generator.parameters(), lr=p.gan_lr)
    def step(b, i):
        real = b[0]
        gen = i % 2 == 1  # fastai's FixedGANSwitcher(n_crit=1, n_gen=1): D, G, D, G...
        g2.switch(gen)
        for q in g2.generator.parameters(): q.requires_grad_(gen)
        for q in g2.critic.parameters(): q.requires_grad_(not gen)
        z = sample_codes(len(real), p)
        pred = g2(z) if gen else g2(real, z)
        loss = loss_func(pred, z); loss.backward()
        opt = opt_g if gen else opt_d
        opt.step(); opt.zero_grad()
    return learn, dict(), cbs, step, g2


STAGES = dict(style=style_stage, content=content_stage, gan=gan_stage)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--stages', default='style,content,gan')
    ap.add_argument('--steps', type=int, default=20); ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--n', type=int, default=2048)
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    base = get_preset(a.preset)
    tmp = Path(tempfile.mkdtemp(prefix='animestyle-overhead-'))
    cache = random_cache(tmp/'cache', a.n, base.image_size)
    p = get_preset(a.preset, synth_artists=len(cache.artists))
    run = RunDir(tmp/'run', p)
    print(f'preset {p.name} ({p.image_size} px), torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {a.steps} steps after {a.warmup}, {a.repeats} repeats', flush=True)
    out = dict(preset=p.name, steps=a.steps, warmup=a.warmup, repeats=a.repeats, date=time.strftime('%Y-%m-%d'),
               torch=torch.__version__, threads=torch.get_num_threads(), load_start=os.getloadavg()[0], stages={})
    for name in a.stages.split(','):
        folder = tmp/name
        learn, fit_kw, cbs, step, plain_model = STAGES[name](run, cache, folder)
        bs = learn.dls.train.bs
        timer = StepTimer(a.warmup, a.steps)
        t_learn, t_plain = [], []
        for r in range(a.repeats):
            for which in (('learner', 'plain') if r % 2 == 0 else ('plain', 'learner')):
                if which == 'learner':
                    learn.fit(1, cbs=cbs + [timer], **fit_kw)
                    t_learn.append(timer.dt)
                else:
                    plain_model.train()
                    t_plain.append(plain_time(step, learn.dls.train, a.warmup, a.steps))
        ml, mp = statistics.median(t_learn), statistics.median(t_plain)
        r = dict(bs=bs, learner_s=t_learn, plain_s=t_plain, learner_img_s=a.steps * bs / ml, plain_img_s=a.steps * bs / mp,
                 ratio=mp / ml, load=os.getloadavg()[0])
        out['stages'][name] = r
        print(f"{name:8s} bs {bs:3d}: Learner {r['learner_img_s']:7.1f} img/s, plain loop {r['plain_img_s']:7.1f} img/s, "
              f"ratio {r['ratio']:.3f}  (median of {a.repeats}; load {r['load']:.2f})", flush=True)
        if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
