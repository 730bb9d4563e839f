"""How the conditional GAN's fidelity changes with training: train (resuming) the GAN of a run to each epoch count
in turn and measure it each time with `evaluate_gan` (style top-1, eq. 8 and eq. 9 errors, content probe,
Fréchet distance and its floor, spread).

    python benchmarks/gan_schedule.py --run runs/notebooks-cpu-copy --epochs 4,12,24,40 [--lambda-style 0.5] [--style-prior normal] [--gan-seed 1] --json out.json

The run must hold a trained style encoder (`style/style.safetensors`) and content encoder (`content/encoder.safetensors`);
its images are rebuilt if missing. `--lambda-style` and `--lambda-content` override the preset (a new run folder is
made beside `--run`, with the upstream encoders copied in), to see whether G responds to the style condition
when eq. 8 weighs more. `--style-prior` does the same for `gan_style_prior` (`normal`: §4's N(0, I); `data`: training
images' style codes). `--gan-seed` trains a replicate: the same data, encoders and measurements, another seed for
G's and D's initialisation and for training's draws (`train_gan(seed=)`), in its own run folder. The new folder
shares the image cache through hard links (copies where links are impossible).
"""
import argparse, dataclasses, json, os, shutil, time
from pathlib import Path

from animestyle.core import RunDir
from animestyle.data.loaders import prepare_data
from animestyle.gan_train import train_gan

KEYS = ('style_top1', 'style_top1_real', 'style_chance', 'style_error_eq8', 'style_error_eq8_real', 'content_error_eq9',
        'content_error_eq9_prior', 'content_probe_top1', 'content_probe_real', 'content_chance', 'fd', 'fd_floor', 'spread_ratio')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--epochs', default='4,12,24,40')
    ap.add_argument('--lambda-style', type=float, default=None); ap.add_argument('--lambda-content', type=float, default=None)
    ap.add_argument('--style-prior', choices=('normal', 'data'), default=None)
    ap.add_argument('--gan-seed', type=int, default=None, help="reseed the GAN alone (default: the run's seed)")
    ap.add_argument('--workers', type=int, default=None); ap.add_argument('--json', default='')
    a = ap.parse_args()
    src = RunDir(a.run, create=False)
    over = {k: v for k, v in (('lambda_style', a.lambda_style), ('lambda_content', a.lambda_content),
                              ('gan_style_prior', a.style_prior)) if v is not None}
    if over or a.gan_seed is not None:
        tag = [f'{k}{v:g}' if isinstance(v, float) else f'{k}-{v}' for k, v in over.items()] + ([] if a.gan_seed is None else [f'seed{a.gan_seed}'])
        path = Path(a.run).with_name(Path(a.run).name + '-' + '-'.join(tag))
        run = RunDir(path, dataclasses.replace(src.preset, **over).validate(), seed=src.seed)
        for f in ('style/style.safetensors', 'content/encoder.safetensors'):
            (path/f).parent.mkdir(parents=True, exist_ok=True)
            if not (path/f).exists(): shutil.copy(Path(a.run)/f, path/f)
        if (Path(a.run)/'data').is_dir() and not (path/'data').exists():  # the same images: the data keys are unchanged
            def link(s, d):
                try: os.link(s, d)
                except OSError: shutil.copy2(s, d)
            shutil.copytree(Path(a.run)/'data', path/'data', copy_function=link)
    else: run = src
    prepare_data(run, workers=a.workers)
    p, out, t0 = run.preset, [], time.perf_counter()
    for e in map(int, a.epochs.split(',')):
        g = train_gan(run, epochs=e, seed=a.gan_seed)
        m = g.metrics
        out.append(dict(epochs=e, wall_s=round(time.perf_counter() - t0, 1), **{k: m.get(k) for k in KEYS},
                        history=m.get('history', [])[-1:]))
        print(f"epoch {e:3d} ({out[-1]['wall_s']:.0f}s): style top1 {m['style_top1']:.3f} (real {m['style_top1_real']:.3f}, "
              f"chance {m['style_chance']:.3f}), eq8 {m['style_error_eq8']:.2f} (real {m['style_error_eq8_real']:.2f}), "
              f"eq9 {m['content_error_eq9']:.1f} (prior {m['content_error_eq9_prior']:.0f}), content probe "
              f"{m.get('content_probe_top1', float('nan')):.3f}, FD {m['fd']:.3f} (floor {m['fd_floor']:.4f}), spread {m['spread_ratio']:.2f}", flush=True)
        if a.json: Path(a.json).write_text(json.dumps(dict(preset=p.name, lambda_style=p.lambda_style, style_prior=p.gan_style_prior, gan_seed=g.metrics.get('seed'),
                                                           lambda_content=p.lambda_content, bs=p.gan_bs, lr=p.gan_lr,
                                                           date=time.strftime('%Y-%m-%d'), stages=out), indent=1))


if __name__ == '__main__': main()
