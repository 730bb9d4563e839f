"""Content VAE training speed: images per second of one training step (style code, Enc, sampled eq. 4, Dec,
backward, optimiser) at a preset, on the default device. Prints one line per batch size.

    python benchmarks/content_speed.py --preset cpu --steps 5
"""
import argparse, time

import torch

from animestyle.content import ContentVAE, ContentVAELoss, content_opt_func, style_stub
from animestyle.core import default_device, get_preset, seed_everything


def bench(preset, bs, steps, device):
    seed_everything(0)
    vae = ContentVAE(preset, style_stub(preset)).to(device).train()
    opt = content_opt_func(preset)([q for q in vae.parameters() if q.requires_grad], lr=preset.content_lr)
    loss_func = ContentVAELoss()
    x = torch.rand(bs, 3, preset.image_size, preset.image_size, device=device)*2-1
    def step():
        loss = loss_func(vae(x), x); loss.backward(); opt.step(); opt.zero_grad()
        return loss
    step()
    if device.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps): loss = step()
    if device.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter()-t)/steps
    return dict(bs=bs, step_s=dt, images_per_s=bs/dt, loss=float(loss))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='cpu')
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--bs', default=None, help='comma-separated batch sizes; default the preset content_bs')
    a = ap.parse_args()
    p, dev = get_preset(a.preset), default_device()
    for bs in [int(b) for b in (a.bs or str(p.content_bs)).split(',')]:
        r = bench(p, bs, a.steps, dev)
        print(f"content VAE, preset {p.name}, {dev.type}, threads {torch.get_num_threads()}: batch {r['bs']}: "
              f"{r['step_s']:.2f} s/step, {r['images_per_s']:.1f} images/s")


if __name__ == '__main__': main()
