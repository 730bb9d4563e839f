"Shared pytest set-up: every test runs at the `tiny` preset, in run directories of its own."
import os, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('ANIMESTYLE_PRESET', 'tiny')
os.environ.setdefault('ANIMESTYLE_RUNS', tempfile.mkdtemp(prefix='animestyle-test-runs-'))
os.environ.setdefault('MPLBACKEND', 'Agg')
