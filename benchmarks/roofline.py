"""Where the main job's compute goes: the machine's matmul peak, each stage's GFLOP per image, images per second and
fraction of that peak, and the TFLOP the preset's schedules spend, all in one run.

    python benchmarks/roofline.py [--preset cpu] [--steps 24] [--gan-layouts] [--json results/cpu_roofline.json]

Each stage's Learner is built by the library itself (`style_learner`, `content_learner`, the judge's and the GAN's
learners) on the preset's synthetic data, with untrained upstream networks where a stage needs them (the cost of a
step does not depend on what they have learned). `core.FlopMeter`, which every stage's Learner carries, counts the
FLOPs of whole training steps (forward, loss, backward; `torch.utils.flop_counter.FlopCounterMode`); the steps
after the first few are timed. The main job's TFLOP multiply GFLOP per image by the images the preset's schedule
trains on (per epoch: the training split for the style models, the content VAE and the judge; every image for the
GAN; the style stage fits two models). Machines differ about 3 x in seconds; the TFLOP do not.
"""
import argparse, json, os, platform, tempfile, time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.data.core import DataLoaders

from animestyle.core import RunDir, get_preset, default_device, cpu_bf16, FLOP_LOG, seed_everything
from animestyle.data.loaders import prepare_data, all_dls


def matmul_peak(dtype, n=2048, reps=8):
    "GFLOP/s of an n x n matmul on this device: the practical peak every stage is compared with."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2): a @ b
    t = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


class _Timed(Callback):
    "Stop the fit after `steps` training steps; time the steps after the first `warm`."
    order = 100
    def __init__(self, steps, warm=4): self.steps, self.warm, self.n, self.images = steps, warm, 0, 0
    def after_step(self):
        self.n += 1
        if self.n == self.warm: self.t0 = time.perf_counter()
        elif self.n > self.warm: self.images += len(self.learn.xb[-1])
        if self.n >= self.steps: self.dt = time.perf_counter() - self.t0; raise CancelFitException()
    def after_fit(self):  # an epoch shorter than `steps`: the steps it had
        if not hasattr(self, 'dt') and self.n > self.warm: self.dt = time.perf_counter() - self.t0


def measure(name, learn, steps):
    FLOP_LOG.clear()
    timer = _Timed(steps)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=[timer])
    g = FLOP_LOG[-1]['gflop_per_image']
    return dict(stage=name, gflop_per_image=g, images_per_s=timer.images / timer.dt)


def learners(run, cache):
    "Each stage's Learner, as the library builds it."
    from animestyle.style import style_learner, StyleCode
    from animestyle.content import content_learner, style_stub
    from animestyle.judge import Judge, JudgeDL, JudgeDataset, JudgeLoss, judge_heads
    from animestyle.training import opt_func
    from animestyle.gan_train import gan_learner
    from fastai.learner import Learner
    p, dev = run.preset, default_device()
    yield 'style (metric)', style_learner(run, cache, 'centres')
    yield 'style (softmax)', style_learner(run, cache, 'softmax')
    yield 'content', content_learner(run, cache, style_stub(p))
    heads, m = judge_heads(cache.manifest), cache.manifest
    train = np.flatnonzero(m.split.values == 'train')
    dl = JudgeDL(JudgeDataset(cache, train, heads), bs=64, shuffle=True, drop_last=True, device=dev)
    judge = Judge(heads).to(dev)
    from animestyle.core import accel_cbs
    yield 'judge', Learner(DataLoaders(dl, dl, device=dev), judge, loss_func=JudgeLoss(heads, judge.y_mean, judge.y_std),
                           opt_func=opt_func('adam'), cbs=accel_cbs(dev))
    yield 'gan', gan_learner(all_dls(cache, p.gan_bs, device=dev), untrained_gan(run, cache), p)


def untrained_gan(run, cache):
    "The preset's GAN with untrained S and Enc, its banks drawn as the `data` priors draw them (random codes of the training images, with their artists)."
    from animestyle.style import StyleCode
    from animestyle.layers import ContentEncoder
    from animestyle.gan import CondGAN, StyleCondition, ContentCondition, build_generator, build_critic
    p, dev, n = run.preset, default_device(), len(cache.artists)
    conds = StyleCondition(StyleCode(p, n)), ContentCondition(ContentEncoder(p), p.d_content)
    gan = CondGAN.from_preset(build_generator(p), build_critic(p, n), *conds, p).to(dev)
    train = np.flatnonzero(cache.manifest.split.values == 'train')
    if p.gan_style_prior == 'data':
        gan.style_bank, gan.artist_bank = torch.randn(len(train), p.d_style), torch.as_tensor(cache.manifest.artist_id.values[train])
    if p.gan_content_prior == 'data': gan.content_bank = torch.randn(len(train), p.d_content)
    return gan


def gan_layouts(run, cache, steps, repeats=3):
    "The GAN Learner's images/s contiguous and in channels_last, alternated `repeats` times in this run: (rows, channels_last's time per step over the contiguous one's, from the medians)."
    from animestyle.gan_train import gan_learner
    p, dev, rows = run.preset, default_device(), []
    for r in range(repeats):
        for cl in (False, True):
            seed_everything(0)
            learn = gan_learner(all_dls(cache, p.gan_bs, device=dev), untrained_gan(run, cache), p, channels_last=cl)
            rows.append(dict(measure(f"gan ({'channels_last' if cl else 'contiguous'})", learn, steps), channels_last=cl, repeat=r))
            print(f"{rows[-1]['stage']:26s} {rows[-1]['images_per_s']:7.1f} images/s", flush=True)
    med = lambda cl: float(np.median([x['images_per_s'] for x in rows if x['channels_last'] == cl]))
    return rows, med(False) / med(True)


def schedule_images(run, cache):
    "Images each stage trains on under the preset's schedule."
    p = run.preset
    n_train, n_all = int((cache.manifest.split == 'train').sum()), len(cache)
    return {'style (metric)': p.style_epochs * n_train, 'style (softmax)': p.style_epochs * n_train,
            'content': p.content_epochs * n_train, 'judge': p.judge_epochs * n_train, 'gan': p.gan_epochs * n_all}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--steps', type=int, default=24); ap.add_argument('--json', default='')
    ap.add_argument('--gan-layouts', action='store_true', help="also time the GAN's Learner contiguous and channels_last, alternated")
    a = ap.parse_args()
    seed_everything(0)
    peak32 = matmul_peak(torch.float32)
    bf16 = cpu_bf16() or torch.cuda.is_available()
    peak16 = matmul_peak(torch.bfloat16) if bf16 else None
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; matmul peak fp32 {peak32:.0f} GFLOP/s"
          + (f", bf16 {peak16:.0f} GFLOP/s (the stages train in bf16 here)" if bf16 else ", no native bf16"))
    peak = peak16 if bf16 else peak32
    with tempfile.TemporaryDirectory() as d:
        run = RunDir(Path(d)/'run', get_preset(a.preset))
        cache = prepare_data(run)
        sched, rows = schedule_images(run, cache), []
        for name, learn in learners(run, cache):
            r = measure(name, learn, a.steps)
            r.update(fraction_of_peak=r['gflop_per_image'] * r['images_per_s'] / peak, schedule_images=sched[name],
                     schedule_tflop=r['gflop_per_image'] * sched[name] / 1e3)
            rows.append(r)
            print(f"{name:16s} {r['gflop_per_image']:6.3f} GFLOP/image  {r['images_per_s']:7.1f} images/s  "
                  f"{100*r['fraction_of_peak']:5.1f}% of peak  schedule {sched[name]:>9,} images = {r['schedule_tflop']:7.1f} TFLOP")
        layouts = gan_layouts(run, cache, 2 * a.steps) if a.gan_layouts else None
    if layouts: print(f"GAN Learner: a step in channels_last takes {layouts[1]:.2f} x the contiguous one's time (medians of {len(layouts[0])//2} fits each)")
    total = sum(r['schedule_tflop'] for r in rows)
    by = {}
    for r in rows: k = r['stage'].split(' ')[0]; by[k] = by.get(k, 0) + r['schedule_tflop']
    print('main job TFLOP by stage: ' + ', '.join(f"{k} {v:.1f}" for k, v in by.items()) + f"; total {total:.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(preset=a.preset, date=time.strftime('%Y-%m-%d'), cpu=platform.processor(),
                                                threads=torch.get_num_threads(), peak_fp32=peak32, peak_bf16=peak16, stages=rows,
                                                tflop_by_stage=by, tflop_total=total,
                                                gan_layouts=layouts and dict(rows=layouts[0], time_ratio_channels_last=layouts[1])), indent=1))


if __name__ == '__main__': main()
