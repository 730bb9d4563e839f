"""The documentation site and the README, built without Quarto and read in a real browser.

`tools/docs.py build --no-quarto` builds the site from this checkout into a temporary folder; the
site is served on 127.0.0.1 and every page is opened in headless Chromium (Debian's `chromium`,
driven by Playwright; no browser is downloaded). A second, tiny notebook folder exercises what the
book's notebooks may not have yet (a figure, `#| echo: false`, `#| hide`). Screenshots of the home
page and the style page (core until it exists) go to `tests/artifacts/`.
"""
import ast, base64, functools, http.server, importlib.util, io, json, re, subprocess, sys, threading
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
CHROMIUM = Path('/usr/bin/chromium')
ARTIFACTS = ROOT/'tests'/'artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']

def _docs_module():
    spec = importlib.util.spec_from_file_location('animestyle_docs_tool', ROOT/'tools'/'docs.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

docs = _docs_module()

# ------------------------------------------------------------------ what the notebooks promise

def _src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def _directives(src):
    d = {}
    for line in src.splitlines():
        m = re.match(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$', line)
        if not m: break
        d[m.group(1)] = m.group(2)
    return d

def _hidden(d): return 'hide' in d or d.get('include') == 'false' or d.get('output') == 'false'

def expectations(nb_path):
    "Title, figure count, math and API names a notebook's page must show, read from the notebook itself."
    nb = json.loads(nb_path.read_text())
    cells = nb['cells']
    title = next((m.group(1).strip() for c in cells if c['cell_type'] == 'markdown'
                  for m in [re.match(r'^\s*#\s+(.+)', _src(c))] if m), None)
    figures = sum(1 for c in cells if c['cell_type'] == 'code' and not _hidden(_directives(_src(c)))
                  for o in c.get('outputs', []) if set(o.get('data', {})) & {'image/png', 'image/jpeg', 'image/svg+xml'})
    math = any('$' in re.sub(r'`[^`]*`', '', _src(c)) for c in cells if c['cell_type'] == 'markdown')
    api, hidden_src = [], []
    for c in cells:
        if c['cell_type'] != 'code': continue
        d, src = _directives(_src(c)), _src(c)
        if 'export' in d or 'exports' in d:
            try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('#|', '%', '!'))))
            except SyntaxError: continue
            api += [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                    and not n.name.startswith('_') and not n.decorator_list]
        elif 'hide' in d or d.get('echo') == 'false':
            hidden_src += [l.strip() for l in src.splitlines() if len(l.strip()) >= 25 and not l.lstrip().startswith('#')]
    shown = '\n'.join(_src(c) for c in cells if c['cell_type'] == 'code' and not ({'hide', 'export', 'exporti'} & set(_directives(_src(c))))
                      and _directives(_src(c)).get('echo') != 'false')
    return dict(title=title, figures=figures, math=math, api=api,
                hidden=[l for l in hidden_src if l not in shown], page=docs.page_name(nb_path))

def expected_order(nbs):
    "Paper order: index first, then the notebooks by their number."
    return [p for p in sorted(nbs.glob('*.ipynb'), key=lambda p: (p.name != 'index.ipynb', p.name))
            if not p.name.startswith(('_', '.'))]

# ------------------------------------------------------------------ building, serving, browsing

def build(out, nbs=None):
    cmd = [sys.executable, 'tools/docs.py', 'build', '--no-quarto', '--out', str(out)] + (['--nbs', str(nbs)] if nbs else [])
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'building without Quarto' in r.stdout, r.stdout
    return json.loads((out/'pages.json').read_text())

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@pytest.fixture(scope='module')
def browser():
    if not CHROMIUM.exists(): pytest.skip(f'{CHROMIUM} not found (apt-get install -y chromium)')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()

def serve(site):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'

# each table of the page: does it fit the text column, and if not, does its box scroll and say so above it?
TABLES = """() => [...document.querySelectorAll('main table')].map(t => {
  const box = t.closest('.table-wrap'), main = document.querySelector('main').getBoundingClientRect();
  const hint = box && box.previousElementSibling;
  return {head: t.innerText.slice(0, 60), width: Math.round(t.getBoundingClientRect().width),
          fits: !!box && box.scrollWidth <= box.clientWidth + 1 && box.getBoundingClientRect().right <= main.right + 1,
          boxed: !!box && box.classList.contains('is-wide') && getComputedStyle(box).overflowX == 'auto'
                 && box.getBoundingClientRect().right <= main.right + 1,
          says: !!hint && hint.classList.contains('table-hint') && !hint.hidden && hint.offsetHeight > 0 && /scroll sideways/.test(hint.innerText)};
})"""

MATH_DONE = "() => new Promise(r => MathJax.Hub.Register.StartupHook('End', r))"
VISIBLE_TEXT = """() => { const m = document.querySelector('main').cloneNode(true);
  m.querySelectorAll('pre, code, script, .MathJax_Preview').forEach(e => e.remove()); return m.innerText; }"""

def visit_all(browser, site, shots=None):
    "Open every HTML page of `site`; return what each shows, plus failed and off-host requests."
    srv, base = serve(site)
    pg = browser.new_page(viewport={'width': 1280, 'height': 1000})   # a laptop's width: every table must read there
    offhost, failed = [], []
    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith('data:'): r.continue_()
        else: offhost.append(r.request.url); r.abort()
    pg.route('**/*', route)
    pg.on('response', lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    # a lazy image still loading when the next page opens is aborted by the browser, not missing: every
    # image source is fetched directly below instead
    pg.on('requestfailed', lambda r: failed.append(('failed', r.url)) if r.url.startswith(base) and r.failure != 'net::ERR_ABORTED' else None)
    pages = {}
    try:
        for f in sorted(site.glob('*.html')):
            resp = pg.goto(base + f.name)
            pg.wait_for_function('window.MathJax && MathJax.Hub && MathJax.Hub.Register')
            pg.evaluate(MATH_DONE)
            pg.wait_for_load_state('load')
            pages[f.name] = dict(
                status=resp.status,
                h1=pg.inner_text('h1.title'),
                title=pg.title(),
                links=pg.eval_on_selector_all('a[href]', 'es => es.map(e => e.href)') + pg.eval_on_selector_all('img[src]', 'es => es.map(e => e.src)'),
                ids=set(pg.eval_on_selector_all('[id], a[name]', 'es => es.map(e => e.id || e.name)')),
                sidebar=pg.eval_on_selector_all('#sidebar a', 'es => es.map(e => e.getAttribute("href"))'),
                figures=pg.eval_on_selector_all('.cell-output img', 'es => es.filter(e => e.complete && e.naturalWidth > 0).length'),
                math_src=pg.locator('script[type^="math/tex"]').count(),
                math_out=pg.locator('.MathJax, .MathJax_Display, .MathJax_SVG').count(),
                math_err=pg.locator('.MathJax .merror, .MathJax_Error').count(),
                showdoc=pg.eval_on_selector_all('.cell-output-markdown h3, .cell-output-markdown h4', 'es => es.map(e => e.id)'),
                code='\n'.join(pg.eval_on_selector_all('pre', 'es => es.map(e => e.innerText)')),
                subtitle=pg.eval_on_selector_all('#title-block-header .description', 'es => es.map(e => e.innerText).join(" ")'),
                pictures=pg.eval_on_selector_all('main img', 'es => es.filter(e => e.complete && e.naturalWidth > 0).map(e => e.getAttribute("src"))'),
                tables=pg.evaluate(TABLES),
                page_width=pg.evaluate('() => document.documentElement.scrollWidth'),
                text=pg.evaluate(VISIBLE_TEXT))
            if shots and f.name in shots:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS/shots[f.name]))
        # links that are not pages (figures, css) must answer 200 too
        for p in pages.values():
            for l in p['links']:
                u = urlsplit(l)
                if l.startswith(base) and not u.path.endswith('.html') and u.path != '/':
                    with urllib.request.urlopen(l.split('#')[0]) as r: assert r.status == 200, l
    finally:
        pg.close(); srv.shutdown()
    return pages, offhost, failed, base

def check_site(pages, offhost, failed, base):
    "The checks every site must pass, whatever its notebooks."
    assert pages and 'index.html' in pages
    assert not offhost, f'pages asked for other hosts: {offhost[:5]}'
    assert not failed, f'failed requests: {failed[:5]}'
    for name, p in pages.items():
        assert p['status'] == 200, (name, p['status'])
        for l in p['links']:
            if not l.startswith(base): continue
            u = urlsplit(l)
            target = u.path.lstrip('/') or 'index.html'
            if target.endswith('.html'):
                assert target in pages, f'{name}: link to missing page {l}'
                if u.fragment: assert unquote(u.fragment) in pages[target]["ids"], f'{name}: link to missing anchor {l}'
        assert '$$' not in p['text'], f'{name}: raw $$ in the visible text'
        raw = re.findall(r'(?<![\\$\w])\$[^\s$][^$\n]{0,80}?(?<=\S)\$(?!\w)', p['text'])
        assert not raw, f'{name}: unrendered inline math {raw[:3]}'
        assert p['math_out'] >= p['math_src'], f'{name}: {p["math_src"]} equations, {p["math_out"]} rendered'
        assert p['math_err'] == 0, f'{name}: {p["math_err"]} equations MathJax could not typeset'
        assert '#|' not in p['code'], f'{name}: a cell directive is shown'
        assert '`' not in p['subtitle'], f'{name}: raw backticks in the subtitle {p["subtitle"]!r}'
        local = [l for l in p['links'] if not l.startswith(base) and re.match(r'^[a-z]+://(127\.0\.0\.1|localhost|\[::1\])(:|/|$)', l)]
        assert not local, f'{name}: links to a local server that is not this site: {local}'
        assert p['page_width'] <= 1280, f'{name}: the page scrolls sideways at 1280 px ({p["page_width"]} px wide)'
        for t in p['tables']:
            assert t['fits'] or (t['boxed'] and t['says']), f'{name}: a {t["width"]} px table is cut off at 1280 px: {t["head"]!r}'

def check_notebooks(nbs, summary, pages):
    "Each notebook in `nbs` has its page, in paper order, with its title, figures, equations and API docs."
    order = expected_order(nbs)
    assert not summary['problems'], summary['problems']
    built = {p['notebook'] for p in summary['pages']}
    assert {p.name for p in order} <= built, f'notebooks without a page: {sorted({p.name for p in order} - built)}'
    want_sidebar = [docs.page_name(p) for p in order]
    for name, p in pages.items():
        assert [h for h in p['sidebar'] if h in want_sidebar] == want_sidebar, (name, p['sidebar'])
    for nb in order:
        e = expectations(nb)
        p = pages[e['page']]
        assert e['title'], f'{nb.name} has no "# Title" cell'
        assert p['h1'] == e['title'], (nb.name, p['h1'], e['title'])
        assert e['title'] in p['title']
        assert p['figures'] >= min(e['figures'], 1), f"{nb.name}: {e['figures']} image outputs, {p['figures']} figures shown"
        if e['math']: assert p['math_src'] > 0 and p['math_out'] > 0, f'{nb.name}: no equation rendered'
        missing = [n for n in e['api'] if docs.slugify(n) not in p['showdoc']]
        assert not missing, f'{nb.name}: no show_doc for {missing}'
        want = list(dict.fromkeys(docs.slugify(n) for n in e['api']))
        assert [i for i in dict.fromkeys(p['showdoc']) if i in want] == want, f'{nb.name}: API cards not in source order'
        shown = [l for l in e['hidden'] if l in p['code']]
        assert not shown, f'{nb.name}: hidden or echo: false source shown: {shown[:2]}'

# ------------------------------------------------------------------ the tests

def test_site_from_checkout(tmp_path, browser):
    summary = build(tmp_path/'_docs')
    assert not summary['problems'], summary['problems']
    style = 'style.html' if (tmp_path/'_docs'/'style.html').exists() else 'core.html'
    pages, offhost, failed, base = visit_all(browser, tmp_path/'_docs',
                                             shots={'index.html': 'docs-home.png', style: f'docs-{style[:-5]}.png'})
    check_site(pages, offhost, failed, base)
    check_notebooks(NBS, summary, pages)
    assert (ARTIFACTS/'docs-home.png').stat().st_size > 10_000
    # the book's own pages: the wide tables the site once cut off, and a picture of the explorer instead of a note alone
    assert any(src.endswith('explorer.png') for src in pages['explorer.html']['pictures']), 'the explorer page shows no picture of it'
    cli = pages['cli.html']['showdoc']
    assert cli.index('prepare') < cli.index('train_style') < cli.index('measure_gan') < cli.index('explore')

def _outputs_text(nb_path):
    "Every text a notebook's committed outputs hold."
    nb = json.loads(nb_path.read_text())
    for c in nb['cells']:
        for o in c.get('outputs', []):
            yield c, ''.join(o.get('text', '')) if 'text' in o else '\n'.join(
                _src({'source': v}) for k, v in o.get('data', {}).items() if k.startswith('text/'))
            for t in o.get('traceback', []): yield c, t

# an absolute path into a checkout: a folder, then one of the project's own folders (runs/, nbs/, tests/, .venv/, ...)
CHECKOUT_PATH = re.compile(r"(?<![\w.~])/(?:[\w.-]+/)+?(?:runs|nbs|tests|animestyle|\.venv|benchmarks)/")

def test_notebook_outputs_name_no_checkout_path():
    "A committed output shows run paths relative to the project, never the machine's checkout it ran in."
    assert CHECKOUT_PATH.search(f"RunDir('{ROOT}/runs/notebooks-cpu')") and not CHECKOUT_PATH.search("RunDir('runs/notebooks-cpu')")
    found = [(nb.name, m.group(0)) for nb in sorted(NBS.glob('*.ipynb')) for _, t in _outputs_text(nb)
             for m in [CHECKOUT_PATH.search(t.replace(str(ROOT) + '/', '/CHECKOUT/'))] if m]
    assert not found, f'absolute checkout paths in notebook outputs: {found[:5]}'

def test_no_training_table_shown_twice():
    "A cell shows fastai's progress table or a DataFrame of the same history, not both."
    for nb in sorted(NBS.glob('*.ipynb')):
        cells = {}
        for c, t in _outputs_text(nb): cells.setdefault(id(c), []).append(t)
        for texts in cells.values():
            assert sum('train_loss' in t and 'valid_loss' in t for t in texts) <= 1, f'{nb.name}: the training table is shown twice'

def _png(w=48, h=32):
    from PIL import Image
    buf = io.BytesIO(); Image.new('RGB', (w, h), (200, 40, 90)).save(buf, format='PNG')
    return base64.b64encode(buf.getvalue()).decode()

def _nb(cells):
    def cell(kind, src, outputs=None):
        c = {'cell_type': kind, 'id': f'c{len(out)}', 'metadata': {}, 'source': src}
        if kind == 'code': c.update(execution_count=None, outputs=outputs or [])
        return c
    out = []
    for c in cells: out.append(cell(*c))
    return {'cells': out, 'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}},
            'nbformat': 4, 'nbformat_minor': 5}

FIXTURE_CELLS = lambda png: [
    ('markdown', '# Tiny page\n\n> A fixture with every kind of cell the book uses.'),
    ('code', '#| default_exp tiny'),
    ('code', '#| hide\nhidden_setup_value_for_the_tests = 42'),
    ('markdown', '## Equations\n\nInline $a^2 + b^2 = c^2$ and displayed:\n\n$$\\mathcal{L} = \\sum_i \\lVert s_i - c_{y_i} \\rVert^2$$\n\nSee [the index](index.ipynb).'),
    ('code', '#| export\ndef tiny_function(x:int=1, # how many\n                 ) -> int:\n    "Return `x` doubled."\n    return 2*x'),
    ('code', '#| echo: false\nfigure_made_by_source_nobody_sees = 1',
     [{'output_type': 'display_data', 'metadata': {}, 'data': {'image/png': png, 'text/plain': '<Figure>'}}]),
    ('code', 'slider',
     [{'output_type': 'display_data', 'metadata': {}, 'data': {'text/plain': 'IntSlider(value=3)',
       'application/vnd.jupyter.widget-view+json': {'model_id': 'abc', 'version_major': 2, 'version_minor': 0}}}]),
    ('markdown', '## A wide table\n\n| ' + ' | '.join(f'column_{i}_with_a_long_name' for i in range(14)) + ' |\n|'
     + '---|'*14 + '\n| ' + ' | '.join(f'value_{i}_that_does_not_wrap' for i in range(14)) + ' |'),
    ('code', 'tiny_function(21)',
     [{'output_type': 'execute_result', 'execution_count': 1, 'metadata': {}, 'data': {'text/plain': '42'}}]),
]

def test_site_renders_every_cell_kind(tmp_path, browser):
    nbs = tmp_path/'nbs'; nbs.mkdir()
    (nbs/'00_tiny.ipynb').write_text(json.dumps(_nb(FIXTURE_CELLS(_png()))))
    (nbs/'index.ipynb').write_text(json.dumps(_nb([('markdown', '# Home\n\n> Start here.'),
                                                    ('markdown', 'Read [the tiny page](00_tiny.ipynb#equations).')])))
    summary = build(tmp_path/'site', nbs)
    pages, offhost, failed, base = visit_all(browser, tmp_path/'site')
    check_site(pages, offhost, failed, base)
    check_notebooks(nbs, summary, pages)
    p = pages['tiny.html']
    assert p['figures'] == 1 and p['math_src'] == 2 and p['math_out'] >= 2
    assert 'tiny_function' in p['showdoc']
    assert 'hidden_setup_value' not in p['code'] and 'figure_made_by_source' not in p['code']
    assert '42' in p['code']
    assert 'IntSlider' not in p['code'] and 'interactive widget' in p['text']
    wide, = [t for t in p['tables'] if 'column_0_with_a_long_name' in t['head']]
    assert not wide['fits'] and wide['boxed'] and wide['says'], wide   # scrolls inside its box, which says so
    assert any(l.endswith('/tiny.html#equations') for l in pages['index.html']['links'])

# ------------------------------------------------------------------ Quarto configuration and README

def test_quarto_config():
    "`nbdev-docs` finds a consistent configuration: the Quarto files agree, and nbdev would rewrite none of them."
    top, nbs = (ROOT/'_quarto.yml').read_text(), (NBS/'_quarto.yml').read_text()
    assert top == nbs, '_quarto.yml and nbs/_quarto.yml differ'
    q = yaml.safe_load(nbs)
    assert q['project']['type'] == 'website'
    assert q['format']['html']['html-math-method'] in ('mathml', 'mathjax', 'katex')
    for f in q['metadata-files'] + [q['format']['html']['css']]: assert (NBS/f).exists(), f
    assert (NBS/'sidebar.yml').read_text() == docs.sidebar_yml(), 'nbs/sidebar.yml is stale: python tools/docs.py sidebar'
    from nbdev.quarto import _nbdev_yml
    cfg = docs.config()
    vals = {k: cfg[k] for k in ['title', 'description', 'branch', 'git_url', 'doc_host', 'doc_baseurl']}
    assert (NBS/'nbdev.yml').read_text() == _nbdev_yml.format(doc_path=cfg.doc_path.name, **vals)

def test_readme_from_notebook(tmp_path):
    "README text: hidden cells dropped, directives stripped, outputs kept, figures as files, same bytes every time."
    png = _png()
    nb = tmp_path/'index.ipynb'
    nb.write_text(json.dumps(_nb(FIXTURE_CELLS(png))))
    text, images = docs.readme_markdown(nb)
    assert text.startswith('# Tiny page\n\n> A fixture with every kind of cell the book uses.\n')
    assert 'hidden_setup_value' not in text and 'figure_made_by_source' not in text and '#|' not in text
    assert '```python\ntiny_function(21)\n```\n\n```\n42\n```' in text
    assert '$$\\mathcal{L} = \\sum_i' in text and 'IntSlider' not in text
    assert f'({docs.doc_url()}index.html)' in text
    (rel, data), = images.items()
    assert f'![]({rel})' in text and data == base64.b64decode(png)
    assert docs.readme_markdown(nb) == (text, images)
