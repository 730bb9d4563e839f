"""The style and content stages under other schedules and epoch bounds: §6.1's claims, the d_style accuracy and the content probes against the TFLOP each spent.

    python benchmarks/stage_schedules.py --run runs/demo --stage style --variants constant,one_cycle_12 --json results/cpu_stage_schedules.json

For every variant a run folder is made beside `--run` (`<run>-sched-<variant>`) with the preset's keys overridden, the
same images (hard links) and, for the content stage, the same trained style stage (copies): then the library's own
stage runs (`style.evaluate_style` with its baseline; `content.content_stage`, which trains and measures), and the row
keeps its full preset, the TFLOP of its training steps (`core.FlopMeter`), the epochs each model ran, and its measures.
`--seed` gives a replicate (the run's seed otherwise), for the run-to-run spread every change is read against.
"""
import argparse, dataclasses, json, shutil, time
from pathlib import Path

from animestyle.core import RunDir, FLOP_LOG, flop_summary, seed_everything
from gan_ablation import _link_tree  # the same hard-linked copy of a run's images

# variant -> preset overrides; 'constant' is the preset as it stands
VARIANTS = {
    'constant': {},
    'one_cycle_30': dict(style_sched='one_cycle', content_sched='one_cycle'),
    'one_cycle_12': dict(style_sched='one_cycle', style_epochs=12, content_sched='one_cycle', content_epochs=6),
    'one_cycle_8': dict(style_sched='one_cycle', style_epochs=8, content_sched='one_cycle', content_epochs=4),
    'flat_cos_12': dict(style_sched='flat_cos', style_epochs=12, content_sched='flat_cos', content_epochs=6),
    'constant_12': dict(style_epochs=12, content_epochs=6),
    'constant_10': dict(content_epochs=10),
    'one_cycle_10': dict(content_sched='one_cycle', content_epochs=10),
    'one_cycle_10_lr3e-4': dict(content_sched='one_cycle', content_epochs=10, content_lr=3e-4),
    'constant_24': dict(content_epochs=24),
    'one_cycle_16_lr5e-3': dict(style_sched='one_cycle', style_epochs=16, style_lr=5e-3),
    'one_cycle_20_lr5e-3': dict(style_sched='one_cycle', style_epochs=20, style_lr=5e-3),
}


def variant_run(src:RunDir, name:str, over:dict, stage:str, seed:int) -> RunDir:
    "A run folder beside `src` with the keys `over` and the same images (and, for the content stage, the same style stage)."
    path = src.path.with_name(f'{src.path.name}-sched-{name}')
    run = RunDir(path, dataclasses.replace(src.preset, **over).validate(), seed=seed)
    if not (path/'data').exists(): _link_tree(src.path/'data', path/'data')
    if stage=='content' and not (path/'style').exists(): shutil.copytree(src.path/'style', path/'style')
    return run


def style_row(run):
    from animestyle.style import evaluate_style
    m = evaluate_style(run)
    acc = {k: {int(d): v for d, v in c.items()} for k, c in m['curves'].items() if k.startswith('acc')}
    return dict(claims=m['claims'], d_prime=m['d_prime'], epochs=m['epochs'],
                acc_metric=acc['acc metric'], acc_baseline=acc.get('acc baseline'),
                ratio_metric_d=m['curves']['ratio metric'][str(run.preset.d_style)] if str(run.preset.d_style) in m['curves']['ratio metric'] else None)


def content_row(run):
    from animestyle.content import content_stage
    content_stage(run)
    m = json.loads((run.content/'metrics.json').read_text())
    return dict(epochs=m['epochs'], summary=m['summary'], chosen_cut=m['pruning']['chosen_cut'],
                final_loss=(m['history'][-1] if m['history'] else None))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--stage', choices=('style', 'content'), required=True)
    ap.add_argument('--variants', default='constant'); ap.add_argument('--json', default='')
    ap.add_argument('--seed', type=int, default=None)
    a = ap.parse_args()
    src = RunDir(a.run, create=False)
    seed = src.seed if a.seed is None else a.seed
    out = json.loads(Path(a.json).read_text()) if a.json and Path(a.json).is_file() else {}
    for name in a.variants.split(','):
        over = {k: v for k, v in VARIANTS[name].items() if k.startswith(a.stage)}
        key = f'{a.stage}:{name}' + ('' if a.seed is None else f'_seed{a.seed}')
        run = variant_run(src, key.replace(':', '-'), over, a.stage, seed)
        FLOP_LOG.clear(); seed_everything(seed); t0 = time.perf_counter()
        row = (style_row if a.stage == 'style' else content_row)(run)
        f = flop_summary()
        p = {k: list(v) if isinstance(v, tuple) else v for k, v in run.preset.as_dict().items()}
        out[key] = dict(stage=a.stage, overrides=over, preset=p, seed=seed, tflop=round(f['tflop'], 2), images=f['images'],
                        fits=[dict(model=r['model'], gflop_per_image=round(r['gflop_per_image'], 4), images=r['images']) for r in FLOP_LOG],
                        wall_s=round(time.perf_counter()-t0, 1), date=time.strftime('%Y-%m-%d'), **row)
        print(key, json.dumps({k: out[key][k] for k in ('tflop', 'wall_s')}), json.dumps(row)[:600], flush=True)
        if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
