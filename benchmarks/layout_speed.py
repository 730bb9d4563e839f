"""One training step of each network on this CPU in four settings: the default, `channels_last`, `torch.compile`, both.

    python benchmarks/layout_speed.py [--preset cpu] [--warm 3] [--steps 5] [--json results/cpu_layout_speed.json]

A step is what the stage's Learner does per batch, without fastai around it: forward and loss under bf16 autocast
where `core.cpu_bf16` says the CPU runs it (`core.autocast`), backward, and the preset's optimiser (`training.opt_func`,
no weight decay). The style encoder S trains with eq. 2's centres and eq. 3's nested dropout; the content VAE with a
stand-in S (`style_stub`: the cost is the same); the GAN takes one D step and one G step (with G's moving average), as
`GANTrainer` alternates them, at the preset's batch sizes. R1 is off in every setting: it takes the gradient of D's
gradient, which `torch.compile` cannot compile (the pipeline draws it on one D step in four).

`channels_last` moves the parameters and the batch to that layout (what fastai's `ChannelsLast` does for the
encoders); `compile` compiles each network's forward in place (`nn.Module.compile`, inductor). After `--warm` steps
(the first compiles), the median of `--steps` timed steps is the ms per step; the ratio is to the default measured
in the same run. The library's defaults are not changed by what this measures.
"""
import argparse, json, platform, statistics, subprocess, time
from pathlib import Path

import torch

from animestyle.core import autocast, cpu_bf16, get_preset, seed_everything
from animestyle.training import opt_func
from animestyle.content import ContentVAE, ContentVAELoss, style_stub
from animestyle.gan import CondGAN, CondGANLoss, ContentCondition, StyleCondition, build_critic, build_generator, ema_update
from animestyle.gan_train import gan_opt_func
from animestyle.layers import ContentEncoder
from animestyle.style import StyleCode, StyleModel

SETTINGS = dict(default=(False, False), channels_last=(True, False), compile=(False, True), both=(True, True))


def cpu_name():
    "The CPU's model name, as `lscpu` gives it."
    try: out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): return platform.processor() or platform.machine()
    return next((l.split(':', 1)[1].strip() for l in out.splitlines() if l.startswith('Model name')), platform.machine())


def prepare(nets, x, cl, comp):
    "The networks and the batch in the setting: channels_last, compiled in place."
    for m in nets:
        if cl: m.to(memory_format=torch.channels_last)
        if comp: m.compile()
    return x.contiguous(memory_format=torch.channels_last) if cl else x


def trainable(*nets): return [q for m in nets for q in m.parameters() if q.requires_grad]


def style_step(p, cl, comp):
    m = StyleModel(p, torch.full((p.synth_artists,), 80.), 'centres').train()
    x = prepare([m], torch.randn(p.style_bs, 3, p.image_size, p.image_size), cl, comp)
    y, opt = torch.randint(p.synth_artists, (p.style_bs,)), opt_func(p.style_opt)(trainable(m), lr=p.style_lr)
    def step():
        with autocast('cpu'): loss = m.loss(m(x), y)
        loss.backward(); opt.step(); opt.zero_grad()
    return step


def content_step(p, cl, comp):
    vae, loss_func = ContentVAE(p, style_stub(p)).train(), ContentVAELoss()
    x = prepare([vae], torch.randn(p.content_bs, 3, p.image_size, p.image_size), cl, comp)
    opt = opt_func(p.content_opt)(trainable(vae), lr=p.content_lr)
    def step():
        with autocast('cpu'): loss = loss_func(vae(x), x)
        loss.backward(); opt.step(); opt.zero_grad()
    return step


def gan_step(p, cl, comp):
    "One D step and one G step."
    conds = StyleCondition(StyleCode(p, p.synth_artists)), ContentCondition(ContentEncoder(p), p.d_content)
    gan = CondGAN.from_preset(build_generator(p), build_critic(p, p.synth_artists), *conds, p).train()
    gan.r1_every = 0
    if p.gan_style_prior == 'data':  # codes drawn from a bank, each with its artist (for D's artist head)
        gan.style_bank, gan.artist_bank = torch.randn(p.synth_artists, p.d_style), torch.arange(p.synth_artists)
    loss_func = CondGANLoss.from_preset(gan, p)
    x = prepare([gan.generator, gan.critic, gan.style, gan.content], torch.randn(p.gan_bs, 3, p.image_size, p.image_size), cl, comp)
    if cl and gan.generator_ema is not None: gan.generator_ema.to(memory_format=torch.channels_last)
    y = torch.randint(p.synth_artists, (p.gan_bs,))  # the real images' artists
    opt_d, opt_g = (gan_opt_func(p)(list(m.parameters()), lr=p.gan_lr) for m in (gan.critic, gan.generator))
    def half(gen, opt):
        gan.switch(gen); gan.generator.requires_grad_(gen); gan.critic.requires_grad_(not gen)  # as GANTrainer switches
        z, y_fake = gan.sample(p.gan_bs, artists=True)
        with autocast('cpu'): loss = loss_func(gan(z) if gen else gan(x, z), z, y_fake, y)
        loss.backward(); opt.step(); opt.zero_grad()
    def step():
        half(False, opt_d); half(True, opt_g)
        if gan.generator_ema is not None: ema_update(gan.generator_ema, gan.generator, p.gan_ema)
    return step


NETS = dict(style=(style_step, 'style_bs'), content=(content_step, 'content_bs'), gan=(gan_step, 'gan_bs'))


def measure(make, p, setting, warm, steps):
    "Seconds of the first step (which compiles), and the median ms per step after `warm` steps."
    seed_everything(0)
    torch._dynamo.reset()
    step = make(p, *SETTINGS[setting])
    t = time.perf_counter(); step(); first = time.perf_counter()-t
    for _ in range(warm-1): step()
    times = []
    for _ in range(steps):
        t = time.perf_counter(); step(); times.append(time.perf_counter()-t)
    return first, 1e3*statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu'); ap.add_argument('--warm', type=int, default=3); ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    p, rows = get_preset(a.preset), []
    cpu, bf16 = cpu_name(), cpu_bf16()
    print(f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, bf16 autocast {'on' if bf16 else 'off'}; preset {p.name}")
    print(f"{'network':8s} {'batch':>5s} {'setting':14s} {'ms/step':>9s} {'x default':>9s} {'first step s':>12s}")
    for net, (make, bs_key) in NETS.items():
        base = None
        for setting in SETTINGS:
            first, ms = measure(make, p, setting, a.warm, a.steps)
            base = base or ms
            rows.append(dict(network=net, batch=getattr(p, bs_key), setting=setting, ms_per_step=ms, ratio_to_default=ms/base, first_step_s=first))
            print(f"{net:8s} {getattr(p, bs_key):5d} {setting:14s} {ms:9.1f} {ms/base:9.2f} {first:12.1f}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(dict(preset=p.name, date=time.strftime('%Y-%m-%d'), cpu=cpu, threads=torch.get_num_threads(),
                                                torch=torch.__version__, bf16=bf16, warm=a.warm, steps=a.steps, r1='off', rows=rows), indent=1))


if __name__ == '__main__': main()
