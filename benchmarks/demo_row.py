"""Record a finished run's GAN (a `make demo` run) as a row of a GAN results file, beside the rows `gan_ablation.py` trains.

    python benchmarks/demo_row.py --run runs/demo --name demo_c720525 --base artist_no_eq8 --change "..." --json results/cpu_gan_content_stage.json

The row has the shape of `gan_ablation.py`'s: the run's full preset, one curve point at its `gan_epochs` read from its
`gan/metrics.json` (the judge's measures, as the pipeline wrote them), the GFLOP per image `cli.step_gflop` counts for
its preset and the TFLOP they make over the epochs' images. Nothing is trained or measured again.
"""
import argparse, json, time
from pathlib import Path

from animestyle.core import RunDir
from animestyle.data.loaders import ImageCache
from gan_ablation import step_gflop, KEYS


def demo_row(run:RunDir, change:str, base:str=None) -> dict:
    m = json.loads((run.gan/'metrics.json').read_text())
    n = len(ImageCache(run.data))  # the GAN trains on every image of the collection
    e, g = run.preset.gan_epochs, step_gflop(run)
    pre = {k: list(v) if isinstance(v, tuple) else v for k, v in run.preset.as_dict().items()}
    point = dict(epochs=e, minutes=round(m['train_seconds']/60, 2), kimages=round(e*n/1e3, 1), gflop_per_image=round(g, 4),
                 tflop=round(e*n*g/1e3, 1), **{k: m.get(k) for k in KEYS})
    return dict(overrides={}, preset=pre, base=base, change=change, curve=[point], date=time.strftime('%Y-%m-%d'),
                source=f'gan/metrics.json of {run.path}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--name', required=True); ap.add_argument('--change', required=True)
    ap.add_argument('--base', default=None); ap.add_argument('--json', required=True)
    a = ap.parse_args()
    out = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {}
    out[a.name] = demo_row(RunDir(a.run, create=False), a.change, a.base)
    Path(a.json).write_text(json.dumps(out, indent=1)); print(a.name, json.dumps(out[a.name]['curve'][0]))


if __name__ == '__main__': main()
