"""Throughput of each training stage's compute at a preset: images/s, peak GPU memory, model FLOP utilisation.

Each stage's networks (Table 1 at `--preset`, default `paper`) run forward and backward on random Lab
batches in a plain loop, with bf16 autocast on CUDA and optionally channels_last and `torch.compile`:
  style    S and the eq. 2 + eq. 3 loss (centres, nested dropout), Adam
  content  Enc + Dec of the VAE with nested dropout, the frozen S feeding the decoder, RMSprop
  gan      one D step (3-network consortium on 1 + 4 + 16 patches) and one G step (adversarial + eq. 8 + eq. 9
           through the frozen S and Enc), RMSprop
FLOPs of one step are counted with `torch.utils.flop_counter.FlopCounterMode` (forward and backward), and
MFU is achieved FLOP/s over the card's dense bf16 peak (`--peak-tflops`, default 989 for H100/H200 SXM).

    python benchmarks/gpu_bench.py --steps 20 --bs 32,128
"""
import argparse, json, time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from animestyle.core import autocast, default_device, get_preset
from animestyle.layers import ContentDecoder, ContentEncoder, Discriminator, Generator, StyleEncoder
from animestyle.style import StyleModel


def patches(x, n, side):
    "n random side×side patches from each image of x: (B*n, C, side, side)."
    B, C, H, W = x.shape
    if H == side: return x
    i = torch.randint(0, H-side+1, (n,)); j = torch.randint(0, W-side+1, (n,))
    return torch.cat([x[:, :, a:a+side, b:b+side] for a, b in zip(i.tolist(), j.tolist())])


def consortium_logits(ds, x):
    "The three scales of §5.2: whole image at side/4; 4 patches at half size; 16 patches at full size."
    S = x.shape[-1]; q = S//4
    views = [F.interpolate(x, size=q, mode='area'), patches(F.interpolate(x, size=S//2, mode='area'), 4, q), patches(x, 16, q)]
    return [d(v) for d, v in zip(ds, views)]


def make_stage(name, p, bs, dev, channels_last):
    "Return (step function, list of modules) for stage `name` at preset `p` and batch size `bs`."
    x = torch.randn(bs, 3, p.image_size, p.image_size, device=dev).clamp(-1, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 32, (bs,), device=dev)
    if name == 'style':
        m = StyleModel(p, torch.full((32,), 100.), 'centres', True).to(dev, memory_format=fmt)
        opt = torch.optim.Adam(m.parameters(), lr=p.style_lr)
        def step():
            with autocast(dev): z = m(x)
            loss = m.loss(z.float(), y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return step, [m]
    if name == 'content':
        S = StyleEncoder(p).to(dev, memory_format=fmt).eval().requires_grad_(False)
        enc, dec = ContentEncoder(p).to(dev, memory_format=fmt), ContentDecoder(p).to(dev, memory_format=fmt)
        opt = torch.optim.RMSprop([*enc.parameters(), *dec.parameters()], lr=p.content_lr)
        w = torch.tensor([(1-p.content_t)*p.content_t**k for k in range(p.content_dim)], device=dev)
        def step():
            with autocast(dev):
                with torch.no_grad(): s = S(x)[:, :p.d_style]
                mu, logvar = enc(x)
                z = mu + torch.randn_like(mu)*(0.5*logvar).exp()
                d = torch.multinomial(w, bs, replacement=True)
                z = z*(torch.arange(p.content_dim, device=dev)[None] <= d[:, None])
                out = dec(torch.cat([s.to(z.dtype), z], 1))
                loss = F.mse_loss(out.float(), x) - 0.5*(1+logvar-mu**2-logvar.exp()).float().sum(1).mean()/x[0].numel()
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return step, [enc, dec]
    if name == 'gan':
        S = StyleEncoder(p).to(dev, memory_format=fmt).eval().requires_grad_(False)
        E = ContentEncoder(p).to(dev, memory_format=fmt).eval().requires_grad_(False)
        G = Generator(p).to(dev, memory_format=fmt)
        Ds = torch.nn.ModuleList([Discriminator(p) for _ in range(3)]).to(dev, memory_format=fmt)
        og = torch.optim.RMSprop(G.parameters(), lr=p.gan_lr); od = torch.optim.RMSprop(Ds.parameters(), lr=p.gan_lr)
        def step():
            code = torch.randn(bs, p.code_dim, device=dev)
            with autocast(dev):
                fake = G(code)
                dl = sum(F.softplus(-r).mean() + F.softplus(f).mean()
                         for r, f in zip(consortium_logits(Ds, x), consortium_logits(Ds, fake.detach())))/3
            od.zero_grad(set_to_none=True); dl.backward(); od.step()
            with autocast(dev):
                gl = sum(F.softplus(-f).mean() for f in consortium_logits(Ds, fake))/3
                gl = gl + p.lambda_style*(S(fake)[:, :p.d_style].float()-code[:, :p.d_style]).pow(2).sum(1).mean()
                gl = gl + p.lambda_content*(E.encode(fake)[:, :p.d_content].float()-code[:, p.d_style:p.d_style+p.d_content]).pow(2).sum(1).mean()
            og.zero_grad(set_to_none=True); gl.backward(); og.step()
        return step, [G, Ds]
    raise ValueError(name)


def bench(name, p, bs, dev, steps, channels_last, compile_):
    step, mods = make_stage(name, p, bs, dev, channels_last)
    if compile_: step = torch.compile(step)
    step()  # build optimiser state before counting
    with FlopCounterMode(display=False) as fc: step()
    flops = fc.get_total_flops()
    for _ in range(3): step()
    if dev.type == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps): step()
    if dev.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter()-t)/steps
    mem = torch.cuda.max_memory_allocated()/2**30 if dev.type == 'cuda' else float('nan')
    return dict(stage=name, bs=bs, channels_last=channels_last, compile=compile_, step_ms=dt*1e3,
                images_per_s=bs/dt, tflops_per_step=flops/1e12, achieved_tflops=flops/dt/1e12, peak_mem_gib=mem)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='paper'); ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--bs', default='', help='comma-separated batch sizes; default: the preset batch size of each stage')
    ap.add_argument('--stages', default='style,content,gan'); ap.add_argument('--peak-tflops', type=float, default=989.)
    ap.add_argument('--channels-last', default='0,1'); ap.add_argument('--compile', action='store_true')
    ap.add_argument('--images', type=int, default=417_000, help='dataset size for the projected epoch time')
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    p, dev = get_preset(a.preset), default_device()
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'
    print(f'device: {name}; torch {torch.__version__}; preset {p.name} ({p.image_size} px)')
    rows = []
    for stage in a.stages.split(','):
        sizes = [int(b) for b in a.bs.split(',')] if a.bs else [getattr(p, f'{stage}_bs')]
        for bs in sizes:
            for cl in [bool(int(c)) for c in a.channels_last.split(',')]:
                r = bench(stage, p, bs, dev, a.steps, cl, a.compile)
                r['mfu'] = r['achieved_tflops']/a.peak_tflops
                r['epoch_min'] = a.images/r['images_per_s']/60
                rows.append(r)
                print(f"{stage:8s} bs={bs:4d} cl={int(cl)} compile={int(a.compile)}  {r['images_per_s']:9.1f} img/s  "
                      f"{r['step_ms']:8.1f} ms/step  {r['achieved_tflops']:7.1f} TFLOP/s  MFU {100*r['mfu']:5.1f}%  "
                      f"mem {r['peak_mem_gib']:5.1f} GiB  epoch of {a.images} images: {r['epoch_min']:.1f} min", flush=True)
                if dev.type == 'cuda': torch.cuda.empty_cache()
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(device=name, torch=torch.__version__, rows=rows), f, indent=1)


if __name__ == '__main__': main()
