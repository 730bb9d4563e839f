"""How fast the embedded synthetic default is drawn: images per second at 64 px (the `cpu` preset).

    python benchmarks/synthetic_speed.py [--n 10000] [--size 64] [--workers N]

The target is 10,000 images at 64 px in under 2 minutes on a 2-core machine (> 83 images/s).
"""
import argparse, os, time

from animestyle.data.synthetic import render_rows, render_size, render_synthetic, synthetic_manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10_000, help='images to draw')
    ap.add_argument('--size', type=int, default=64, help='output side in pixels')
    ap.add_argument('--workers', type=int, default=None, help='processes (default: all cores)')
    a = ap.parse_args()
    workers = a.workers or os.cpu_count()
    man = synthetic_manifest(32, 24, -(-a.n // 32), seed=0).iloc[:a.n]
    t = time.perf_counter(); render_rows(man.iloc[:100].to_dict('records'), a.size); one = 100 / (time.perf_counter() - t)
    t = time.perf_counter(); imgs = render_synthetic(man, a.size, workers=workers); dt = time.perf_counter() - t
    print(f'synthetic portraits: {len(imgs)} images at {a.size} px (drawn at {render_size(a.size)} px), {workers} workers')
    print(f'  one process : {one:7.1f} images/s')
    print(f'  all workers : {len(imgs) / dt:7.1f} images/s, {dt:.1f} s in total')


if __name__ == '__main__': main()
