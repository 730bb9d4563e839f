"""How the image cache scales: build time and peak memory for 1k, 10k and 100k synthetic images at 64 px.

    python benchmarks/cache_growth.py [--sizes 1000,10000,100000] [--source synthetic|random] [--workers 2] [--dir /tmp] [--json out.json]

Each size is built by `build_cache` in a fresh Python process (so no size inherits
another's memory), then deleted. The child reports its wall time and, from a sampler thread reading
/proc/<pid>/status every 0.1 s, the peak resident memory of the whole process tree (the build process plus
its drawing workers), split into anonymous memory (Python objects, arrays) and file-backed pages (the
memmap, which the kernel can drop at will), and `resource.getrusage`'s ru_maxrss of the process and of its
children. Time per image should stay about constant and anonymous memory flat as the data set grows.

`--source synthetic` (default) draws the embedded synthetic portraits (`synthetic_plan`), so its time is mostly
drawing. `--source random` runs the same cache machinery (chunks in worker processes, resumable chunk files,
assembly into the memmap, the manifest) on random pixels with a three-column manifest: it isolates what the cache
itself costs, which is what decides whether 417k images fit on one machine.
"""
import argparse, json, os, resource, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path


def _status(pid):
    "RssAnon and RssFile of `pid`, in bytes (0, 0 if it is gone)."
    out = {'RssAnon': 0, 'RssFile': 0}
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            k = line.split(':')[0]
            if k in out: out[k] = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError): pass
    return out


def _tree(pid):
    "pid and all its descendants."
    import psutil
    try: p = psutil.Process(pid); return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error: return [pid]


class Sampler(threading.Thread):
    "Poll the memory of this process tree; keep the peaks."
    def __init__(self, every=0.1):
        super().__init__(daemon=True); self.every, self.stop, self.peak = every, threading.Event(), {}
    def run(self):
        me = os.getpid()
        while not self.stop.is_set():
            pids = _tree(me)
            per = {p: _status(p) for p in pids}
            cur = dict(main_anon=per[me]['RssAnon'], main_file=per[me]['RssFile'],
                       tree_anon=sum(v['RssAnon'] for v in per.values()),
                       tree_rss=sum(v['RssAnon'] + v['RssFile'] for v in per.values()),
                       workers_anon=sum(v['RssAnon'] for p, v in per.items() if p != me))
            for k, v in cur.items(): self.peak[k] = max(self.peak.get(k, 0), v)
            self.stop.wait(self.every)


def random_images(tasks, size):
    "Worker: random uint8 images, one per task, seeded by the task."
    import numpy as np
    rng = np.random.default_rng(tasks[0]['seed'])
    return rng.integers(0, 256, (len(tasks), size, size, 3), dtype=np.uint8)


def random_plan(n, size, per=100):
    "A `SourcePlan` of `n` random images, `per` per artist, with the cache's minimal manifest."
    import pandas as pd
    from animestyle.data.ingest import SourcePlan, split_by_artist
    def finish(recs):
        recs = recs.copy(); recs.insert(2, 'split', split_by_artist(recs.artist, 0)); return recs, {}
    tasks = [dict(artist=f'artist_{i // per:05d}', artist_id=i // per, seed=i) for i in range(n)]
    return SourcePlan(name='random pixels', key=dict(source='random', n=n, size=size), tasks=tasks, work=random_images,
                      work_kw=dict(size=size), finish=finish)


def child(n, dest, workers, size, source):
    "Build one cache of `n` images in this (fresh) process and print one JSON line."
    from animestyle.core import get_preset
    from animestyle.data.loaders import build_cache, synthetic_plan
    per = 100
    s = Sampler(); s.start()
    t0 = time.perf_counter()
    if source == 'random': plan = random_plan(n, size, per)
    else: plan = synthetic_plan(get_preset('cpu', image_size=size, synth_artists=max(1, n // per), synth_per_artist=min(n, per)), seed=0)
    t_plan = time.perf_counter() - t0
    cache = build_cache(dest, plan, workers=workers)
    dt = time.perf_counter() - t0
    s.stop.set(); s.join()
    mb = 2**20
    r = dict(n=len(cache), source=source, size=size, workers=workers, seconds=dt, plan_seconds=t_plan, ms_per_image=1e3 * dt / len(cache),
             images_per_s=len(cache) / dt, cache_mb=(Path(dest) / 'images.u8').stat().st_size / mb,
             **{f'peak_{k}_mb': v / mb for k, v in s.peak.items()},
             ru_maxrss_self_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             ru_maxrss_children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print('RESULT ' + json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', default='1000,10000,100000'); ap.add_argument('--workers', type=int, default=os.cpu_count())
    ap.add_argument('--px', type=int, default=64); ap.add_argument('--dir', default=tempfile.gettempdir())
    ap.add_argument('--source', default='synthetic', choices=('synthetic', 'random'))
    ap.add_argument('--json', default=''); ap.add_argument('--keep', action='store_true', help='keep the built caches')
    ap.add_argument('--child', nargs=2, metavar=('N', 'DEST'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(int(a.child[0]), a.child[1], a.workers, a.px, a.source)
    rows = []
    print(f'cache growth ({a.source}) at {a.px} px, {a.workers} workers, load {os.getloadavg()[0]:.2f}', flush=True)
    for n in [int(x) for x in a.sizes.split(',')]:
        dest = Path(a.dir) / f'animestyle-growth-{n}'
        shutil.rmtree(dest, ignore_errors=True)
        load0 = os.getloadavg()[0]
        try:
            out = subprocess.run([sys.executable, __file__, '--workers', str(a.workers), '--px', str(a.px), '--source', a.source, '--child', str(n), str(dest)],
                                 capture_output=True, text=True, check=True).stdout
        finally:
            if not a.keep:
                shutil.rmtree(dest, ignore_errors=True)
                for p in Path(a.dir).glob(f'.{dest.name}*'): shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        r = json.loads([l for l in out.splitlines() if l.startswith('RESULT ')][-1][7:])
        r['load_before'], r['load_after'] = load0, os.getloadavg()[0]
        rows.append(r)
        print(f"{r['n']:7d} images  {r['seconds']:8.1f} s  {r['ms_per_image']:6.2f} ms/image  ({r['images_per_s']:6.1f} img/s)  "
              f"peak anon: build process {r['peak_main_anon_mb']:6.0f} MB, tree {r['peak_tree_anon_mb']:6.0f} MB; "
              f"peak tree RSS incl. file pages {r['peak_tree_rss_mb']:6.0f} MB; cache {r['cache_mb']:6.0f} MB; "
              f"ru_maxrss self {r['ru_maxrss_self_mb']:6.0f} MB  load {r['load_before']:.2f}->{r['load_after']:.2f}", flush=True)
        if a.json: Path(a.json).write_text(json.dumps(dict(date=time.strftime('%Y-%m-%d'), cpus=os.cpu_count(), source=a.source, px=a.px, rows=rows), indent=1))


if __name__ == '__main__': main()
