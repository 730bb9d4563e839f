"""The fastai Learner's cost: the same model, data and number of steps through each stage's `Learner` (with the
project's callbacks) and through a plain PyTorch loop, in one process, interleaved, at the `cpu` preset.

    python benchmarks/loop_overhead.py [--steps 20] [--warmup 5] [--repeats 5] [--stages style,content,gan] [--json out.json]
    python benchmarks/loop_overhead.py --device cuda --preset paper --n 512    # on a GPU

Both loops read the same loader (`CacheDL`: uint8 memmap -> Lab on the device) over a cache of random 64 px images
(the numbers do not depend on what the images show) and run the same model (a copy of the Learner's, taken before training) with the same optimiser class:
  style    `style_learner` (eqs. 2 + 3, Adam) + the checkpoint and early stopping of `fit_style`
           vs  z = S(x); loss = model.loss(z, y); backward; torch.optim.Adam step
           (both mirror half of each batch when the preset's `style_flip` is on)
  content  `content_learner` (VAE with nested dropout, RMSprop) + its checkpoint and reconstruction callbacks
           vs  loss = ContentVAELoss(vae(x), x); backward; torch.optim.RMSprop step
  gan      `gan_learner` (GANTrainer alternating D and G steps, RMSprop) + samples, monitor and checkpoint callbacks
Every Learner also carries `DivergenceGuard`, as the stages' fits do.
           vs  the same alternation written out, one batch per step
A step is one batch. Each repeat times `--steps` steps after `--warmup` steps, for the Learner (between two of its
after_batch events, so everything the Learner does per batch is inside) and for the plain loop; the order of the
two alternates between repeats, and the medians are compared. Per-epoch work (validation, checkpoints, figures)
is outside both: it is paid once per epoch, not per step.
On CUDA the Learners carry `core.accel_cbs` (bf16 `MixedPrecision`; `ChannelsLast` for the encoders), so the plain
loop does the same: its model is a channels_last copy (encoders) and its forward runs under bf16 autocast, the
loss on float32 outputs. Both timers synchronise the GPU. With PLAIN_SYNC=1 the style stage's plain loop also reads its
loss back to the host every step, as fastai's Recorder does, which isolates the cost of that synchronisation.
With GUARD=0 the Learners run without `DivergenceGuard` (on CUDA it reads nothing back with fused Adam, the style
stage, and reads loss and gradient norm back once per step with RMSprop, the content and GAN stages).
"""
import argparse, copy, json, os, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.tracker import EarlyStoppingCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_speed import random_cache  # noqa: E402

from animestyle.core import RunDir, autocast, get_preset
from animestyle.training import DivergenceGuard  # noqa: E402
from animestyle.data.loaders import all_dls  # noqa: E402


class StepTimer(Callback):
    "Time `steps` training batches after `warmup`, then stop the fit."
    order = 100
    def __init__(self, warmup, steps): self.warmup, self.steps = warmup, steps
    def before_fit(self): self.i, self.t0, self.dt = 0, None, None
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.warmup: sync(); self.t0 = time.perf_counter()
        if self.i == self.warmup + self.steps:
            sync(); self.dt = time.perf_counter() - self.t0
            raise CancelFitException()


SYNC = bool(int(os.environ.get('PLAIN_SYNC', '0')))  # PLAIN_SYNC=1: the style plain loop reads its loss back every step, as fastai does


GUARD = os.environ.get('GUARD', '1') != '0'  # GUARD=0: the Learners without DivergenceGuard, to measure what it costs


def guard(stage): return [DivergenceGuard(stage)] if GUARD else []


def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def plain_time(step, dl, warmup, steps):
    "Run `step(batch, i)` over `dl` and time `steps` batches after `warmup`."
    it, t0 = iter(dl), None
    for i in range(warmup + steps):
        step(next(it), i)
        if i + 1 == warmup: sync(); t0 = time.perf_counter()
    sync()
    return time.perf_counter() - t0


def fast_copy(model, dev, channels_last=True):
    "A copy of the Learner's model laid out as `core.accel_cbs` lays it out on `dev`."
    m = copy.deepcopy(model)
    return m.to(memory_format=torch.channels_last) if dev.type == 'cuda' and channels_last else m


def style_stage(run, cache, folder, dev):
    from animestyle.style import StyleCheckpoint, style_learner
    p = run.preset
    torch.manual_seed(0); learn = style_learner(run, cache, 'centres', True, device=dev)
    mon = f'acc@{p.d_style}'
    cbs = [StyleCheckpoint(folder/'best.safetensors', folder/'last.safetensors', mon),
           EarlyStoppingCallback(monitor=mon, comp=np.greater, min_delta=1e-3, patience=2)] + guard('style')
    model = fast_copy(learn.model, dev)  # the same network, initialised the same way
    opt = torch.optim.Adam(model.parameters(), lr=p.style_lr, fused=True)  # the kernel the Learner's opt_func picks
    def step(b, i):
        x, y = b
        if p.style_flip:  # what the Learner's RandomFlip does
            x = torch.where((torch.rand(len(x), device=x.device) < 0.5)[:, None, None, None], x.flip(-1), x)
        with autocast(dev): z = model(x)
        loss = model.loss(z.float(), y); loss.backward(); opt.step(); opt.zero_grad()
        if SYNC: loss.item()  # what fastai's Recorder and progress bar do every batch
    return learn, dict(lr=p.style_lr, wd=0.), cbs, step, model


def content_stage(run, cache, folder, dev):
    from animestyle.content import (ContentCheckpoint, ContentVAELoss, SaveReconstructions, content_learner,
                                    heldout_images, style_stub)
    p = run.preset
    torch.manual_seed(0); S = style_stub(p)
    torch.manual_seed(0); learn = content_learner(run, cache, S, device=dev)
    cbs = [ContentCheckpoint(folder/'ckpt.safetensors', 0, [], {}), SaveReconstructions(heldout_images(cache, device=dev), folder/'recon', 0)] + guard('content')
    vae = fast_copy(learn.model, dev).train()  # the same network, with the same data-dependent initialisation
    opt = torch.optim.RMSprop([q for q in vae.parameters() if q.requires_grad], lr=p.content_lr)
    loss_func = ContentVAELoss()
    def step(b, i):
        x = b[0]
        with autocast(dev): pred = vae(x)
        loss = loss_func(tuple(t.float() for t in pred) if isinstance(pred, tuple) else pred.float(), x)
        loss.backward(); opt.step(); opt.zero_grad()
    return learn, dict(lr=p.content_lr, wd=0.), cbs, step, vae


def gan_stage(run, cache, folder, dev):
    from animestyle.gan import CondGAN, CondGANLoss, ContentCondition, MultiScaleDiscriminator, StyleCondition, sample_codes
    from animestyle.gan_train import GANCheckpoint, GANMonitor, GANSamples, gan_learner
    from animestyle.style import StyleCode
    from animestyle.layers import ContentEncoder, Generator, StyleEncoder
    p = run.preset
    def make():
        torch.manual_seed(0)
        return CondGAN(Generator(p), MultiScaleDiscriminator(p),
                       StyleCondition(StyleCode(p, 1)),
                       ContentCondition(ContentEncoder(p), p.d_content), p)
    gan = make().to(dev)
    cbs = [GANSamples(folder/'samples', sample_codes(8, p, torch.Generator().manual_seed(0))),
           GANMonitor(np.random.default_rng(0).standard_normal((64, p.style_features[-1])).astype(np.float32)),
           GANCheckpoint(folder/'gan.safetensors')] + guard('gan')
    learn = gan_learner(all_dls(cache, p.gan_bs, device=dev), gan, p)
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
        z = sample_codes(len(real), p, device=dev)
        with autocast(dev):  # fastai's MixedPrecision keeps the loss under autocast too
            pred = g2(z) if gen else g2(real, z)
            pred = pred.float() if gen else tuple([t.float() for t in l] for l in pred)
            loss = loss_func(pred, z)
        loss.backward()
        opt = opt_g if gen else opt_d
        opt.step(); opt.zero_grad()
    return learn, dict(), cbs, step, g2


STAGES = dict(style=style_stage, content=content_stage, gan=gan_stage)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--stages', default='style,content,gan')
    ap.add_argument('--steps', type=int, default=20); ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--n', type=int, default=2048)
    ap.add_argument('--json', default=''); ap.add_argument('--device', default='cpu')
    ap.add_argument('--profile', default='', help='folder: also profile each loop once (torch.profiler) and write its top operators there')
    a = ap.parse_args()
    dev = torch.device(a.device)
    base = get_preset(a.preset)
    tmp = Path(tempfile.mkdtemp(prefix='animestyle-overhead-'))
    cache = random_cache(tmp/'cache', a.n, base.image_size)
    p = get_preset(a.preset, synth_artists=len(cache.artists))
    run = RunDir(tmp/'run', p)
    print(f'preset {p.name} ({p.image_size} px), torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {a.steps} steps after {a.warmup}, {a.repeats} repeats', flush=True)
    out = dict(preset=p.name, device=str(dev), gpu=torch.cuda.get_device_name() if dev.type == 'cuda' else None, steps=a.steps, warmup=a.warmup, repeats=a.repeats, date=time.strftime('%Y-%m-%d'),
               torch=torch.__version__, threads=torch.get_num_threads(), load_start=os.getloadavg()[0], guard=GUARD, plain_sync=SYNC, stages={})
    for name in a.stages.split(','):
        folder = tmp/name
        learn, fit_kw, cbs, step, plain_model = STAGES[name](run, cache, folder, dev)
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
        if a.profile: profile_loops(name, learn, cbs + [timer], fit_kw, step, a, dev)


def profile_loops(name, learn, cbs, fit_kw, step, a, dev):
    "One more pass of each loop under torch.profiler; the operator tables (device time, host time) go to `a.profile`."
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    folder = Path(a.profile); folder.mkdir(parents=True, exist_ok=True)
    for which in ('learner', 'plain'):
        with profile(activities=acts) as prof:
            if which == 'learner': learn.fit(1, cbs=cbs, **fit_kw)
            else: plain_time(step, learn.dls.train, a.warmup, a.steps)
        ka = prof.key_averages()
        tables = [ka.table(sort_by=k, row_limit=30) for k in (['self_device_time_total'] if dev.type == 'cuda' else []) + ['self_cpu_time_total']]
        (folder/f'{name}_{which}.txt').write_text(f'{name}, {which}: {a.warmup}+{a.steps} steps\n\n' + '\n\n'.join(tables))


if __name__ == '__main__': main()
