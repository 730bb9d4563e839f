"""Does the GAN draw the artists better from more pictures of each, at the same GAN minutes? A `cpu` run on a larger
synthetic set (every stage retrained on it), its GAN measured by its judge at epoch counts that show G as many images
as the preset's runs do.

    python benchmarks/gan_data_scaling.py --per-artist 200 --gan-epochs 10,20 --json benchmarks/results/cpu_gan_data_scaling.json

The `cpu` preset draws 100 pictures per artist, so D sees each real picture 70 times in a GAN stage; at 200 it sees
each 35 times for the same number of images. S, Enc and the judge are trained on the same larger set (S reads styles
better from more pictures: `style_data_scaling.py`), so what moves is the whole pipeline at a larger collection, not
one key. Each epoch count is measured as `train_gan` measures (the learning rate is constant, so a resumed run at
N epochs is a run of N epochs). The run folder is kept (`--root`, default `runs/`), so a rerun resumes.
"""
import argparse, json, time
from pathlib import Path

from animestyle.cli import run_stage, train_options
from animestyle.core import RunDir, get_preset
from animestyle.gan_train import train_gan

KEYS = ('judge_style_fidelity', 'judge_content_recovery', 'row_consistency', 'column_consistency', 'judge_fd', 'judge_fd_floor',
        'judge_real_artist', 'judge_real_character', 'style_top1', 'train_seconds')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--per-artist', type=int, default=200); ap.add_argument('--gan-epochs', default='10,20')
    ap.add_argument('--root', default='runs'); ap.add_argument('--json', default='')
    a = ap.parse_args()
    p = get_preset('cpu', synth_per_artist=a.per_artist)
    path = Path(a.root)/f'cpu-{a.per_artist}-per-artist'
    run = RunDir(path, p, seed=42) if not (path/'config.json').exists() else RunDir(path, create=False)
    out = dict(per_artist=a.per_artist, date=time.strftime('%Y-%m-%d'), stage_seconds={}, curve=[])
    for s in ('prepare', 'style', 'content'):
        t = time.perf_counter()
        run_stage(s, run, skip_baseline=True, **({} if s == 'prepare' else train_options()))
        out['stage_seconds'][s] = round(time.perf_counter()-t, 1)
    for e in map(int, a.gan_epochs.split(',')):
        m = train_gan(run, epochs=e).metrics
        row = dict(epochs=e, minutes=round(m['train_seconds']/60, 2), **{k: m.get(k) for k in KEYS})
        out['curve'].append(row)
        print(json.dumps(row), flush=True)
        if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
