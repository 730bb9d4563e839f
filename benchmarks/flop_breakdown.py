"""Where each step's FLOPs go, and which of them teach nothing: counted on meta tensors (no arithmetic is done).

    python benchmarks/flop_breakdown.py [--preset cpu]

Prints, per training image, with `torch.utils.flop_counter.FlopCounterMode` by module:

1. the GAN's D step (as `GANTrainer` takes it, R1 off) split into G's forward pass, the frozen S and Enc, and D with
   the losses, and the G step's total (in a G step the backward pass runs through D, S and Enc into G, so counts by
   module overlap there). In a D step S and Enc only read the real images' codes for the projection D: codes that are
   fixed per image, which `train_gan` reads once (`CondGAN.cache_conditions`); the step is counted both ways;
2. the content VAE's step split into its encoder, its decoder and the frozen S (which only gives the style code
   the decoder is conditioned on, again fixed per image, read once by `content_learner`), both ways;
3. the share of a style and a content epoch spent on the held-out evaluation (a forward pass on the held-out images,
   against a training step on the training images).
"""
import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from animestyle.core import get_preset


def per_image(fn, bs, depth=2):
    with FlopCounterMode(display=False, depth=depth) as m: fn()
    return m.get_total_flops() / bs / 1e9, {k: sum(v.values()) / bs / 1e9 for k, v in m.get_flop_counts().items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--preset', default='cpu')
    ap.add_argument('--train-images', type=int, default=2880); ap.add_argument('--heldout-images', type=int, default=320,
                    help="the split of an epoch (default: the synthetic default's at the cpu preset)")
    a = ap.parse_args()
    from animestyle.style import StyleCode, StyleModel
    from animestyle.layers import ContentEncoder
    from animestyle.content import ContentVAE, ContentVAELoss, style_stub
    from animestyle.gan import CondGAN, CondGANLoss, ContentCondition, StyleCondition, build_critic, build_generator
    p, meta, n, bs = get_preset(a.preset), torch.device('meta'), get_preset(a.preset).synth_artists, 2
    n_train, n_held = a.train_images, a.heldout_images
    x, y = torch.zeros(bs, 3, p.image_size, p.image_size, device=meta), torch.zeros(bs, dtype=torch.long, device=meta)
    def build(make):
        with meta: return make().train()
    conds = StyleCondition(StyleCode(p, n)).to(meta), ContentCondition(ContentEncoder(p), p.d_content).to(meta)
    gan = CondGAN.from_preset(build(lambda: build_generator(p)), build(lambda: build_critic(p, n)), *conds, p).train()
    if p.gan_style_prior == 'data': gan.style_bank, gan.artist_bank = torch.zeros(n, p.d_style), torch.arange(n)
    loss, gan.r1_every = CondGANLoss.from_preset(gan, p), 0
    print(f"preset {p.name}: GFLOP per training image")
    for gen in (False, True):
        gan.switch(gen); gan.generator.requires_grad_(gen); gan.critic.requires_grad_(not gen)
        z, yf = gan.sample(bs, artists=True)
        tot, parts = per_image(lambda: loss(gan(z) if gen else gan(x, z), z, yf, y).backward(), bs)
        if gen: print(f"GAN G step {tot:.3f}"); continue
        g, s, c = (parts.get(f'CondGAN.{k}', 0.) for k in ('generator', 'style', 'content'))
        print(f"GAN D step {tot:.3f}: G's forward {g:.3f}, S {s:.3f}, Enc {c:.3f}, D and the losses {tot-g-s-c:.3f} "
              f"(S and Enc on the real images' fixed codes: {(s+c)/tot:.1%} of the step)")
        gan.real_codes = torch.zeros(bs, p.d_style+p.d_content, device=meta)
        cached = per_image(lambda: loss(gan(x, z, torch.arange(bs, device=meta)), z, yf, y).backward(), bs)[0]
        gan.real_codes = None
        print(f"GAN D step with the codes read once (as `train_gan` trains): {cached:.3f}")
    vae = build(lambda: ContentVAE(p, style_stub(p)))
    tot, parts = per_image(lambda: ContentVAELoss()(vae(x), x).backward(), bs)
    print(f"content VAE step {tot:.3f}: encoder {parts.get('ContentVAE.enc', 0):.3f}, decoder {parts.get('ContentVAE.dec', 0):.3f}, "
          f"frozen S {parts.get('ContentVAE.style', 0):.3f} ({parts.get('ContentVAE.style', 0)/tot:.1%} of the step, codes fixed per image)")
    vae.style_codes = torch.zeros(bs, p.d_style, device=meta)
    print(f"content VAE step with the style codes read once (as `content_learner` trains): "
          f"{per_image(lambda: ContentVAELoss()(vae(x, rows=torch.arange(bs, device=meta)), x).backward(), bs)[0]:.3f}")
    r = torch.arange(bs, device=meta)  # the content epoch below: as it trains, codes looked up
    sm = build(lambda: StyleModel(p, torch.ones(n), 'centres'))
    for name, model, step, fwd in (('style', sm, lambda: sm.loss(sm(x), y).backward(), lambda: sm(x)),
                                   ('content', vae, lambda: ContentVAELoss()(vae(x, rows=r), x).backward(), lambda: ContentVAELoss()(vae(x, rows=r), x))):
        tr = per_image(step, bs)[0]; model.eval()
        with torch.no_grad(): ev = per_image(fwd, bs)[0]
        model.train()
        print(f"{name} epoch: training {tr:.3f} x {n_train:,} images, held-out evaluation {ev:.3f} x {n_held} images: "
              f"evaluation {n_held*ev/(n_train*tr+n_held*ev):.1%} of the epoch's FLOPs")


if __name__ == '__main__': main()
