"""Each addition of the `cpu` preset's GAN, on and off, graded by the independent judge.

    python benchmarks/gan_ablation.py --run runs/notebooks-cpu --variants cpu,no_ema,paper_d --epochs 10,20,30 --json out.json

For every variant a run folder is made beside `--run` (`<run>-ablation-<variant>`) with the preset's GAN keys
overridden, the same images (hard links), the same trained S, Enc and judge (copies), and the run's seed. Its GAN
is trained by `gan.train_gan` (the library's stage, nothing else) to each epoch count in turn, resuming, and
measured each time, so every variant also gives a curve of the judge's measures against training minutes.
The run must hold trained style, content and judge stages (`animestyle train-content`, `judge.train_judge`).

`results/cpu_gan_ablation.json` was measured in rounds, and each entry's `overrides` say what it ran with, from the
preset of its round: its `cpu` entry is the preset before `wide_fine` joined it (16 channels at full resolution, which
`narrow_fine` now reproduces; G with two layers per level, learning rate 4e-4), and `wide_fine` (32 channels there) is
the preset before `mapping`, run to 140 epochs. `mapping` (`wide_fine` with `gan_mapping = 2`) is the preset as it is
now; `recon_10` and `proj_hidden` are `wide_fine` with one change, and `mapping_nearest_up` is `mapping` with
nearest-neighbour upsampling, measured on the `runs/demo` of its day against that run's own GAN. The round before it (`lambda_style_0`, `style_aug`,
`match`, `proj_all`, `match_proj_all`, `content_swap`, `noise`, `wide_fine`) changes its keys, `lr_2e-4` is the preset before it, `bs_16` and
`lambda_style_2` that one with one more change, `shallow` and `wide` the one before (`gan_arch = cbn`, with R1), and the
other variants that one without R1 (`no_r1` is their baseline).
"""
import argparse, dataclasses, json, os, shutil, time
from pathlib import Path

from animestyle.core import RunDir
from animestyle.gan import train_gan

# variant -> preset overrides; 'cpu' is the preset as it stands (in the stored results: as it stood then), every other variant changes one thing
VARIANTS = {
    'cpu': {},
    'no_ema': dict(gan_ema=0.),                         # samples from G itself
    'adam_0.9': dict(gan_beta1=0.9),                    # Adam's default first beta (fastai's)
    'content_normal': dict(gan_content_prior='normal'), # v from N(0, I), as §4
    'style_normal': dict(gan_style_prior='normal', gan_content_prior='normal'),  # both codes from N(0, I), as §4
    'plain_d': dict(gan_disc='plain'),                  # the same D, blind to the codes
    'paper_g': dict(gan_arch='resnet'),                 # Table 1's G: the code at its input only
    'paper_d': dict(gan_disc='consortium'),             # §5.2's three 16-px discriminators
    'no_r1': dict(gan_r1=0.),                           # without R1 on real images
    'augment': dict(gan_augment=True),                  # + DiffAugment (translation, cutout)
    'mbstd': dict(gan_mbstd=True),                      # + minibatch standard deviation in D
    'lambda_content_0.5': dict(lambda_content=0.5),     # eq. 9 weighted 10 x more
    'no_eq8_eq9': dict(lambda_style=0., lambda_content=0.),  # only the adversarial loss
    'shallow': dict(gan_arch='cbn'),                    # G with one layer per level (DCGAN's), the preset before cbn_deep
    'wide': dict(gen_features=(32, 64, 128, 256, 256), disc_features=(32, 64, 128, 256, 256)),  # twice the width at full resolution
    'lr_4e-4': dict(gan_lr=4e-4),                       # twice the preset's learning rate, for G and D
    'lr_8e-4': dict(gan_lr=8e-4),
    'bs_16': dict(gan_bs=16),
    'lambda_style_2': dict(lambda_style=2.),            # eq. 8 weighted 4 x more
    'match': dict(gan_match=1.),                        # + matching-aware D: real images with another image's style code are fakes
    'proj_all': dict(gan_proj_levels=5),                # + the code projected at every level of D, not only the last
    'match_proj_all': dict(gan_match=1., gan_proj_levels=5),  # both
    'content_swap': dict(gan_content_swap=1.),          # v from another training image than u, as the judge draws them
    'style_aug': dict(gan_style_aug=True),              # eq. 8 read on G's images mirrored and shifted
    'lambda_style_0': dict(lambda_style=0.),            # no eq. 8: the style reaches G through D's projection alone
    'lambda_style_0.1': dict(lambda_style=0.1),         # eq. 8 weighted a fifth of the paper's 0.5
    'noise': dict(gan_noise=True),                      # + per-pixel noise inputs in G, for grain and strands
    'wide_fine': dict(gen_features=(32, 32, 64, 128, 256), disc_features=(32, 32, 64, 128, 256), gan_mapping=0),  # twice the width at full resolution only: the preset before `mapping`
    'narrow_fine': dict(gen_features=(16, 32, 64, 128, 256), disc_features=(16, 32, 64, 128, 256)),  # 16 channels at full resolution: the preset before
    'nearest_up': dict(gan_upsample='nearest'),         # G doubles each side by nearest-neighbour upsampling and a 3 x 3 convolution
    'recon_10': dict(gan_recon=10.),                    # + L1 from G's image of a training picture's own codes to that picture, weight 10
    'recon_3': dict(gan_recon=3.),
    'recon_30': dict(gan_recon=30.),
    'mapping': dict(gan_mapping=2),                     # G's norms read the code through two fully connected layers (a mapping network)
    'proj_hidden': dict(gan_proj_hidden=256),          # D maps the code to its embedding through a hidden layer of 256, not linearly
    'mapping_nearest_up': dict(gan_mapping=2, gan_upsample='nearest'),  # the mapping network and nearest-neighbour upsampling together
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--variants', default=','.join(VARIANTS))
    ap.add_argument('--epochs', default=None, help="epoch counts to measure at, e.g. 10,20,30 (default: the preset's gan_epochs)")
    ap.add_argument('--json', default='')
    ap.add_argument('--seed', type=int, default=None, help="the GAN's seed (`train_gan`'s), for a replicate: stored as <variant>_seed<N>; default the run's")
    a = ap.parse_args()
    src = RunDir(a.run, create=False)
    out = json.loads(Path(a.json).read_text()) if a.json and Path(a.json).is_file() else {}
    for name in a.variants.split(','):
        over = VARIANTS[name]
        key = name if a.seed is None else f'{name}_seed{a.seed}'
        run = variant_run(src, key, over)
        curve, t0 = [], time.perf_counter()
        for e in map(int, (a.epochs or str(run.preset.gan_epochs)).split(',')):
            m = train_gan(run, epochs=e, seed=a.seed)['metrics']
            curve.append(dict(epochs=e, minutes=round(m['train_seconds']/60, 2), **{k: m.get(k) for k in KEYS}))
            print(key, json.dumps(curve[-1]), flush=True)
        out[key] = dict(overrides=over, **({} if a.seed is None else dict(seed=a.seed)), curve=curve,
                        date=time.strftime('%Y-%m-%d'), wall_s=round(time.perf_counter()-t0, 1))
        if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
