"""Each addition of the `cpu` preset's GAN, on and off, graded by the independent judge.

    python benchmarks/gan_ablation.py --run runs/notebooks-cpu --variants cpu,no_ema,paper_d --epochs 10,20,30 --json out.json

For every variant a run folder is made beside `--run` (`<run>-ablation-<variant>`) with the preset's GAN keys
overridden, the same images (hard links), the same trained S, Enc and judge (copies), and the run's seed. Its GAN
is trained by `gan_train.train_gan` (the library's stage, nothing else) to each epoch count in turn, resuming, and
measured each time, so every variant also gives a curve of the judge's measures against training minutes.
The run must hold trained style, content and judge stages (`animestyle train-content`, `judge.train_judge`).

Every row written keeps the full preset it ran with (`preset`), the row it changes one thing from (`base`, the
`cpu` row of the same file unless `--base` says otherwise) and what that change is (`change`), so a row stays
readable after the presets move on. The variants of `results/cpu_gan_ablation.json` that used switches since retired
(DiffAugment, minibatch std, the matching-aware D, noise inputs, ...) are kept there; the git tag `gan-search-final`
is the last commit that can train them. Row `artist_patch` of `results/cpu_gan_tflop.json` (artist logits at every
position of D's S/4 map, `gan_artist_patch`) is kept there too; the tag `gan-artist-patch` (commit 37f9f85) trains it. Tables and curves: `animestyle.ablation` (nbs/07c_gan_ablation.ipynb).
"""
import argparse, dataclasses, json, os, shutil, time
from pathlib import Path

from animestyle.core import RunDir, FLOP_LOG
from animestyle.gan_train import train_gan

# variant -> preset overrides; 'cpu' is the preset as it stands (in the stored results: as it stood then), every other variant changes one thing
VARIANTS = {
    'cpu': ({}, 'the preset as it stands'),
    'no_ema': (dict(gan_ema=0.), 'samples from G itself, not its moving average'),
    'adam_0.9': (dict(gan_beta1=0.9), "Adam's default first beta (fastai's)"),
    'content_normal': (dict(gan_content_prior='normal'), 'v from N(0, I), as in §4'),
    'style_normal': (dict(gan_style_prior='normal', gan_content_prior='normal'), 'both codes from N(0, I), as in §4'),
    'paper_g': (dict(gan_arch='resnet', gan_mapping=0), "Table 1's G: the code at its input only"),
    'paper_d': (dict(gan_disc='consortium'), "§5.2's three 16-px discriminators"),
    'no_r1': (dict(gan_r1=0.), 'no R1 on real images'),
    'no_mapping': (dict(gan_mapping=0), "G's norms read the code itself"),
    'lambda_content_0.5': (dict(lambda_content=0.5), 'eq. 9 weighted 10 x more'),
    'no_eq8_eq9': (dict(lambda_style=0., lambda_content=0.), 'only the adversarial loss'),
    'lr_8e-4': (dict(gan_lr=8e-4), 'learning rate 8e-4'),
    'bs_16': (dict(gan_bs=16), 'batch 16: twice the steps per epoch'),
    'lambda_style_2': (dict(lambda_style=2.), 'eq. 8 weighted 4 x more'),
    'lambda_style_0': (dict(lambda_style=0.), 'no eq. 8: the style reaches G through D alone'),
    'artist_1': (dict(gan_artist=1.), "D's artist head (ADC-GAN), weight 1 in D's and G's loss"),
    'artist_0.3': (dict(gan_artist=0.3), "D's artist head (ADC-GAN), weight 0.3"),
    'artist_3': (dict(gan_artist=3.), "D's artist head (ADC-GAN), weight 3"),
    'artist_1_content_0.5': (dict(gan_artist=1., lambda_content=0.5), "eq. 9 weighted 10 x more, with D's artist head (weight 1)"),
    'artist_no_eq8': (dict(gan_artist=1., lambda_content=0.5, lambda_style=0.), "no eq. 8 (S out of G's step): the artist reaches G through D's head alone"),
    'no_eq8_content_1': (dict(gan_artist=1., lambda_content=1., lambda_style=0.), "eq. 9 weighted 1, without eq. 8, with D's artist head"),
    'narrow_fine': (dict(gen_features=(16, 32, 64, 128, 256), disc_features=(16, 32, 64, 128, 256)), '16 channels at full resolution'),
    'sn': (dict(gan_sn=True), "spectral norm on D's layers in place of its batch norms (SNGAN)"),
    'ssd': (dict(gan_ssd=1.), "D redraws each real image at half its side from its map at 1/8 of it, L1 weight 1 (FastGAN)"),
}
KEYS = ('judge_style_fidelity', 'judge_content_recovery', 'row_consistency', 'column_consistency', 'judge_fd', 'judge_fd_floor',
        'judge_real_artist', 'judge_real_character', 'style_top1', 'content_probe_top1', 'fd', 'fd_floor', 'spread_ratio', 'train_seconds')


def _link_tree(src, dst):
    def link(s, d):
        try: os.link(s, d)
        except OSError: shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link)


def variant_run(src:RunDir, name:str, over:dict) -> RunDir:
    "A run folder beside `src` with the GAN keys `over`, the same images, S, Enc and judge."
    path = src.path.with_name(f'{src.path.name}-ablation-{name}')
    run = RunDir(path, dataclasses.replace(src.preset, **over).validate(), seed=src.seed)
    for stage in ('style', 'content', 'judge'):
        for f in (src.path/stage).glob('*'):
            if f.is_file() and f.suffix in ('.safetensors', '.json') and not (path/stage/f.name).exists():
                (path/stage).mkdir(parents=True, exist_ok=True); shutil.copy2(f, path/stage/f.name)
    if not (path/'data').exists(): _link_tree(src.path/'data', path/'data')
    return run


def step_gflop(run:RunDir) -> float:
    "GFLOP per training image of `run`'s GAN: `cli.step_gflop`'s count (a D step, with R1 at its rate, and a G step, as the trainer takes them), with the run's artists."
    from animestyle.cli import step_gflop as count
    from animestyle.data.loaders import ImageCache
    return count(run.preset, n_artists=len(ImageCache(run.data).artists))['gan']


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--variants', default=','.join(VARIANTS))
    ap.add_argument('--epochs', default=None, help="epoch counts to measure at, e.g. 10,20,30 (default: the preset's gan_epochs)")
    ap.add_argument('--json', default='')
    ap.add_argument('--base', default='cpu', help="the row every variant changes one thing from")
    ap.add_argument('--seed', type=int, default=None, help="the GAN's seed (`train_gan`'s), for a replicate: stored as <variant>_seed<N>; default the run's")
    a = ap.parse_args()
    src = RunDir(a.run, create=False)
    out = json.loads(Path(a.json).read_text()) if a.json and Path(a.json).is_file() else {}
    for name in a.variants.split(','):
        over,change = VARIANTS[name]
        key = name if a.seed is None else f'{name}_seed{a.seed}'
        run = variant_run(src, key, over)
        curve, t0, prev, cost = [], time.perf_counter(), 0, None
        gflop = step_gflop(run)
        for e in map(int, (a.epochs or str(run.preset.gan_epochs)).split(',')):
            m = train_gan(run, epochs=e, seed=a.seed).metrics
            if FLOP_LOG and e>prev: cost = dict(FLOP_LOG[-1], epochs=e-prev)  # this fit's images
            per_epoch = cost['images']/cost['epochs'] if cost else None
            curve.append(dict(epochs=e, minutes=round(m['train_seconds']/60, 2), kimages=per_epoch and round(e*per_epoch/1e3, 1),
                              gflop_per_image=round(gflop, 4), tflop=per_epoch and round(e*per_epoch*gflop/1e3, 1), **{k: m.get(k) for k in KEYS}))
            prev = e
            print(key, json.dumps(curve[-1]), flush=True)
        p = {k: list(v) if isinstance(v, tuple) else v for k, v in run.preset.as_dict().items()}
        out[key] = dict(overrides=over, preset=p, base=None if key == a.base else a.base,
                        change=change + ('' if a.seed is None else f' (GAN seed {a.seed})'), **({} if a.seed is None else dict(seed=a.seed)), curve=curve,
                        date=time.strftime('%Y-%m-%d'), wall_s=round(time.perf_counter()-t0, 1))
        if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
