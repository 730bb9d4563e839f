"""Where the GAN's style fidelity is lost: the code, the draw of v, or G's drawing of each style factor.

    python benchmarks/style_gap.py --run runs/notebooks-cpu

Reads a run with a trained GAN and judge (the synthetic default: it needs the ground-truth style factors) and prints:

1. the ceiling the style code sets: how often S's codes put a held-out real image nearest its own artist's mean code,
   and what fraction of the training codes nearest each artist's mean code are that artist's;
2. the judge's style fidelity of G (its moving average) for three draws of the code: the artist's mean style code
   with another picture's content code (what `judge_gan` measures), one training picture's style code with another
   picture's content code, and both codes of one training picture (what G trains on);
3. per style factor, how well the judge's reading agrees with the artist's true level: on held-out real images,
   and on G's images for the first and last draw above (accuracy for a categorical factor, correlation otherwise);
4. per continuous style factor, how much of the artists' spread G draws: the slope of each artist's mean judge reading
   against the artist's true level, on G's images (mean u) and on held-out real images, and their ratio. A ratio
   well below 1 with a high correlation means G draws each artist's way in the right direction, too faintly;
5. the judge's style fidelity when each artist's mean style code is pushed 2 and 3 times as far from the mean of all
   training codes (the same content and noise codes): whether a faint drawing can be made stronger from the code.
"""
import argparse

import numpy as np
import torch

from animestyle.core import RunDir
from animestyle.data.loaders import prepare_data
from animestyle.gan import split_code, join_code
from animestyle.gan_train import build_gan, load_gan
from animestyle.gan_measure import factor_agreement, batched
from animestyle.judge import load_judge, judge_read


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--per-artist', type=int, default=16)
    a = ap.parse_args()
    run = RunDir(a.run, create=False)
    cache = prepare_data(run)
    if not any(c.startswith('style_') for c in cache.manifest.columns):
        raise SystemExit(f"style_gap: {a.run} has no ground-truth style factors; it needs a run on the synthetic default")
    judge = load_judge(run, 'cpu')
    gan, _, real = build_gan(run, cache, 'cpu', judge)
    g = load_gan(run, 'cpu'); gan.generator, gan.generator_ema = g.G_raw, g.G
    p = run.preset
    u_a, A = real.artist_styles(), real.n_artists
    tr, te = real.train, ~real.train
    bank, cbank, lab = real.style[tr], real.content[tr], real.artist[tr]
    print(f"1. S's code: held-out real images nearest their artist's mean code "
          f"{(torch.cdist(real.style[te], u_a).argmin(1).numpy() == real.artist[te]).mean():.3f}")
    for k in (1, 8, 32):
        nn_ = torch.cdist(u_a, bank).topk(k, largest=False).indices.numpy()
        print(f"   the {k} training codes nearest each artist's mean code: {(lab[nn_] == np.arange(A)[:, None]).mean():.3f} that artist's")
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(A).repeat_interleave(a.per_artist)
    _, v, w = split_code(gan.sample(len(t), gen), p)
    rng = np.random.default_rng(0)
    idx = np.array([rng.choice(np.flatnonzero(lab == k)) for k in t.numpy()])
    draws = {'mean u, other v': join_code(u_a[t], v, w), 'one picture u, other v': join_code(bank[idx], v, w),
             'one picture u and v': join_code(bank[idx], cbank[idx], w)}
    read = {k: judge_read(judge, batched(gan.sampler, z)) for k, z in draws.items()}
    print('2. judge style fidelity of G:')
    for k, d in read.items(): print(f"   {k:24s} {(d['artist_id'].to_numpy() == t.numpy()).mean():.3f}")
    cat = {c for c, n in judge.heads_spec if n}
    ag = {'real': factor_agreement(real.judge_reading, real.held_artist, real.style_truth, cat),
          'mean u': factor_agreement(read['mean u, other v'], t.numpy(), real.style_truth, cat),
          'one picture': factor_agreement(read['one picture u and v'], t.numpy(), real.style_truth, cat)}
    print(f"3. {'factor':16s} {'real':>6s} {'G, mean u':>10s} {'G, one picture':>15s}")
    for f in ag['real']:
        print(f"   {f:16s} {ag['real'][f]:6.2f} {ag['mean u'][f]:10.2f} {ag['one picture'][f]:15.2f}")
    print(f"4. {'factor':16s} {'slope real':>10s} {'slope G':>8s} {'G / real':>9s}")
    held, mean_u = real.judge_reading.assign(a=real.held_artist), read['mean u, other v'].assign(a=t.numpy())
    ratios = []
    for f in ag['real']:
        col = f'style_{f}' if f'style_{f}' in real.style_truth else f
        if col in cat or col not in mean_u: continue
        truth = real.style_truth[col].to_numpy()
        sr, sg = (np.polyfit(truth, d.groupby('a')[col].mean().reindex(range(A)).to_numpy(), 1)[0] for d in (held, mean_u))
        ratios.append(sg/sr)
        print(f"   {f:16s} {sr:10.2f} {sg:8.2f} {sg/sr:9.2f}")
    print(f"   median G / real: {np.median(ratios):.2f}")
    centre = bank.mean(0)
    print('5. judge style fidelity, the artist\'s mean code pushed from the mean of all codes:')
    for k in (1, 2, 3):
        z = join_code(centre + k*(u_a[t] - centre), v, w)
        print(f"   x {k}: {(judge_read(judge, batched(gan.sampler, z))['artist_id'].to_numpy() == t.numpy()).mean():.3f}")


if __name__ == '__main__': main()
