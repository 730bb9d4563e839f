"""Figure 2 and the fine-texture figure of GAN runs side by side, for the GAN notebook's pictures of each lever.

    python benchmarks/gan_figures.py --runs runs/demo-ablation-cpu,runs/demo-ablation-artist_1 --out nbs/images --prefix lever

For each run (the variant folders `benchmarks/gan_ablation.py` trains) the report's own figures are drawn with the
library's functions (`analysis.figure2`, `report.figure_texture`) on the same artists, characters and noise, and
written as `<out>/<prefix>_<variant>_figure2.png` and `<out>/<prefix>_<variant>_texture.png`.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

from animestyle.analysis import StyleSpace, figure2
from animestyle.report import figure_texture


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', required=True); ap.add_argument('--out', required=True); ap.add_argument('--prefix', default='lever')
    a = ap.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    for run in a.runs.split(','):
        name = Path(run).name.split('-ablation-')[-1]
        ss = StyleSpace.from_run(run, device='cpu')
        for f, tag in ((figure2, 'figure2'), (figure_texture, 'texture')):
            fig = f(ss, path=out/f'{a.prefix}_{name}_{tag}.png'); plt.close(fig)
            print(fig.saved_to)


if __name__ == '__main__': main()
