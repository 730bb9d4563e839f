#!/usr/bin/env bash
# Download, for a GPU machine without network, the wheels animestyle needs beyond what such a machine's
# PyTorch image already holds (torch, numpy, pandas, scikit-learn, matplotlib, safetensors, ...).
# usage: benchmarks/gpu_wheels.sh [DIR=.whl] [PYVER=3.12]
set -euo pipefail
dir=${1:-.whl}; pyver=${2:-3.12}
pkgs=$(.venv/bin/python - <<'PY'
from importlib.metadata import version
names = ['fastai','fastcore','fasttransform','fastprogress','fastdownload','plum-dispatch','beartype',
         'kornia','kornia_rs','python-fasthtml','starlette','itsdangerous','python-multipart','oauthlib',
         'beautifulsoup4','soupsieve','uvicorn','httpx2','execnb','nbdev','ghapi','asttokens','watchdog','astunparse',
         # IPython, for execnb to run the notebooks' `#| cuda` cells
         'ipython','traitlets','jedi','parso','prompt_toolkit','pygments','matplotlib-inline','pexpect','ptyprocess',
         'stack_data','executing','pure_eval','wcwidth','ipython_pygments_lexers']
out = []
for n in names:
    try: out.append(f'{n}=={version(n)}')
    except Exception: pass
print(' '.join(out))
PY
)
mkdir -p "$dir"
for p in $pkgs; do
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$dir" "$p" 2>&1 | { grep -v WARNING || true; }
done
ls "$dir"
