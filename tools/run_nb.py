"""Run notebooks at a preset on a copy and merge the outputs back: `python tools/run_nb.py cpu nbs/05_style.ipynb ...`.

The copy keeps the source notebook editable while a long run executes; outputs are merged back by cell id,
only into cells whose source did not change meanwhile."""
import json, os, re, shutil, subprocess, sys, time
from pathlib import Path

def collapse(text):
    "What a notebook shows of a stream: on each line, only what follows the last carriage return (progress bars)."
    return '\n'.join((line[:-1] if line.endswith('\r') else line).rsplit('\r', 1)[-1] for line in text.split('\n'))

def tidy(outputs):
    "Progress-bar redraws collapsed to their last state, as Jupyter renders them, so that notebooks stay small."
    for o in outputs:
        if o.get('output_type')=='stream':
            t = collapse(''.join(o['text'])); o['text'] = [l for l in re.split(r'(?<=\n)', t) if l]
    return outputs

def run(preset, path):
    path = Path(path)
    tmp = path.with_name(f'_{preset}_{path.name}')
    shutil.copy(path, tmp)
    env = dict(os.environ, ANIMESTYLE_PRESET=preset)
    t = time.time()
    try:
        r = subprocess.run([str(Path(sys.executable).with_name('nbdev-test')), str(tmp), '--save', '--do-print', '--cell-timeout', '0'], env=env)
        print(f'{path.name}: exit {r.returncode} in {time.time()-t:.0f} s', flush=True)
        if r.returncode: return False
        out = {c['id']:c for c in json.loads(tmp.read_text())['cells']}
        nb = json.loads(path.read_text())
        for c in nb['cells']:
            o = out.get(c['id'])
            if c['cell_type']=='code' and o is not None and o['source']==c['source']:
                c['outputs'],c['execution_count'] = tidy(o.get('outputs', [])),o.get('execution_count')
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False)+'\n')
        return True
    finally: tmp.unlink(missing_ok=True)

if __name__=='__main__':
    if sys.argv[1]=='--tidy':  # tidy committed outputs in place: python tools/run_nb.py --tidy nbs/*.ipynb
        for p in sys.argv[2:]:
            nb = json.loads(Path(p).read_text())
            for c in nb['cells']:
                if c['cell_type']=='code': tidy(c.get('outputs', []))
            Path(p).write_text(json.dumps(nb, indent=1, ensure_ascii=False)+'\n')
        sys.exit(0)
    preset, paths = sys.argv[1], sys.argv[2:]
    ok = all([run(preset, p) for p in paths])
    subprocess.run([str(Path(sys.executable).with_name('nbdev-clean'))])
    sys.exit(0 if ok else 1)
