"""Execute every notebook top to bottom at the `tiny` preset, through nbdev's own test runner.

Cells flagged with one of `[tool.nbdev] tst_flags` (`notest`, `cuda`, `slow`) are skipped, exactly as
`nbdev-test` does. The notebooks share one run directory per preset under `$ANIMESTYLE_RUNS`, so a later
notebook reuses what an earlier one trained; they run in file order in one worker for that reason.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook_runs(nb, monkeypatch):
    assert os.environ['ANIMESTYLE_PRESET'] == 'tiny'
    monkeypatch.chdir(ROOT/'nbs')
    flags = get_config().tst_flags
    flags = flags.split() if isinstance(flags, str) else list(flags)
    ok, _ = run_notebook(nb, skip_flags=flags, showerr=True)
    assert ok, f'{nb.name} failed at the tiny preset (see the traceback above)'
