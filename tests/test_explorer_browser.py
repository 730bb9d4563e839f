"""The explorer in a real browser, in both places people use it: JupyterLab (run the explorer notebook, move a slider)
and the standalone web app (`animestyle explore`). Debian's chromium driven by playwright; screenshots in tests/artifacts/."""
import json, os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from test_analysis import trained_tiny_run

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/'tests'/'artifacts'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
LOCAL = ('http://127.0.0.1', 'ws://127.0.0.1', 'data:', 'blob:', 'about:')

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f'{CHROMIUM} missing: apt-get install -y chromium')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _wait_http(url, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None: raise RuntimeError(f'server exited with {proc.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=5): return
        except Exception: time.sleep(0.5)
    raise TimeoutError(f'{url} did not answer in {timeout}s')


def _on_failure(page, name):
    "Keep a screenshot of the page when a check fails, then let the failure through."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try: page.screenshot(path=str(ARTIFACTS/f'{name}_failure.png'), full_page=True)
    except Exception: pass


class _Server:
    "A server process in its own process group, stopped (group and all) on exit."
    def __init__(self, cmd, env, cwd, log):
        self.log = open(log, 'w')
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
    def __enter__(self): return self.proc
    def __exit__(self, *a):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope='module')
def run():
    "The tiny run of the tests, or the trained run that $ANIMESTYLE_EXPLORER_RUN names (the documentation's picture comes from a cpu run)."
    from animestyle.core import RunDir
    other = os.environ.get('ANIMESTYLE_EXPLORER_RUN')
    return RunDir(other, create=False) if other else trained_tiny_run()


@pytest.fixture(scope='module')
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _env(tmp):
    env = dict(os.environ, ANIMESTYLE_PRESET='tiny', JUPYTER_CONFIG_DIR=str(tmp/'jupyter-config'),
               JUPYTER_RUNTIME_DIR=str(tmp/'jupyter-runtime'), MPLBACKEND='module://matplotlib_inline.backend_inline')
    env['PATH'] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _drag_first_slider(page, explorer):
    "Drag the first style slider of `explorer` to the right; return the image's src before and after, and both screenshots."
    img = explorer.locator('.animestyle-image')
    page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=60_000)
    src0, shot0 = img.get_attribute('src'), img.screenshot()
    handle = explorer.locator('.noUi-handle').first
    handle.scroll_into_view_if_needed()
    bb = handle.bounding_box()
    x, y = bb['x'] + bb['width'] / 2, bb['y'] + bb['height'] / 2
    page.mouse.move(x, y); page.mouse.down(); page.mouse.move(x + 80, y, steps=8); page.mouse.up()
    page.wait_for_function("([el, s]) => el.src != s && el.complete && el.naturalWidth > 0", arg=[img.element_handle(), src0], timeout=60_000)
    page.wait_for_timeout(300)
    return src0, img.get_attribute('src'), shot0, img.screenshot()


def test_explorer_in_jupyterlab(run, browser, tmp_path):
    nbdir = tmp_path/'nbs'; nbdir.mkdir()
    shutil.copy(ROOT/'nbs'/'09_explorer.ipynb', nbdir/'09_explorer.ipynb')   # never let autosave touch the source
    port = _free_port()
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--IdentityProvider.token=', '--ServerApp.password=', f'--ServerApp.root_dir={nbdir}', '--LabApp.expose_app_in_browser=True',
           f'--LabApp.workspaces_dir={tmp_path/"ws"}', f'--LabApp.user_settings_dir={tmp_path/"settings"}']
    with _Server(cmd, _env(tmp_path), nbdir, tmp_path/'jupyterlab.log') as proc:
        _wait_http(f'http://127.0.0.1:{port}/api/status', proc)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.goto(f'http://127.0.0.1:{port}/lab/tree/09_explorer.ipynb', timeout=120_000)
        page.wait_for_selector('.jp-NotebookPanel .jp-Notebook', timeout=120_000)
        try:   # a notebook without saved kernel metadata asks which kernel: take the default
            page.locator('.jp-Dialog .jp-mod-accept').click(timeout=15_000)
        except Exception: pass
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                               "window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .animestyle-explorer').length >= 2", timeout=300_000)
            page.wait_for_function("() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].every(p => !p.textContent.includes('*'))",
                                   timeout=120_000)
            explorer = page.locator('.jp-Notebook .animestyle-explorer').last
            src0, src1, shot0, shot1 = _drag_first_slider(page, explorer)
        except Exception:
            _on_failure(page, 'explorer_jupyterlab'); raise
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        explorer.screenshot(path=str(ARTIFACTS/'explorer_jupyterlab.png'))
        errors = page.locator('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback")').count()
        page.close()
    assert src1 != src0 and shot1 != shot0, 'moving the slider did not change the image in JupyterLab'
    assert errors == 0


def test_explorer_web_app(run, browser, tmp_path):
    port = _free_port()
    cmd = [sys.executable, '-c', 'from animestyle.cli import cli; cli()', 'explore', '--run', str(run.path), '--port', str(port)]
    with _Server(cmd, _env(tmp_path), tmp_path, tmp_path/'voila.log') as proc:
        _wait_http(f'http://127.0.0.1:{port}/', proc)
        page = browser.new_page(viewport={'width': 1200, 'height': 900})
        outside = []
        page.on('request', lambda r: None if r.url.startswith(LOCAL) else outside.append(r.url))
        page.goto(f'http://127.0.0.1:{port}/', timeout=120_000)
        try:
            explorer = page.locator('.animestyle-explorer').first
            explorer.wait_for(state='visible', timeout=180_000)
            src0, src1, shot0, shot1 = _drag_first_slider(page, explorer)
        except Exception:
            _on_failure(page, 'explorer_web_app'); raise
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS/'explorer_web_app.png'))
        explorer.screenshot(path=str(ARTIFACTS/'explorer_widget.png'))   # the picture on the explorer's documentation page
        page.close()
    assert src1 != src0 and shot1 != shot0, 'moving the slider did not change the image in the web app'
    assert outside == [], f'the web app requested addresses beyond 127.0.0.1: {outside}'
    assert 'http://127.0.0.1' in (tmp_path/'voila.log').read_text()
