#!/usr/bin/env python
"""Build animestyle's documentation site and README, with Quarto or without it.

    python tools/docs.py readme [--check] [--quarto]   README.md from nbs/index.ipynb
    python tools/docs.py build [--out _docs]           the site (Quarto when installed)
    python tools/docs.py serve [--port 8000]           build if needed, serve on 127.0.0.1
    python tools/docs.py sidebar [--check]             nbs/sidebar.yml from the notebooks present

**Quarto path.** Where `quarto` is on PATH, `build` runs nbdev's own `nbdev-docs`, configured by
`nbs/_quarto.yml`, `nbs/nbdev.yml` and `nbs/sidebar.yml`; `nbdev-preview` works as usual.

**Without Quarto** (this machine, CI) `build` makes the same pages itself:

1. Each notebook goes through nbdev's own documentation processors (`FilterDefaults`, exactly what
   `nbdev-proc-nbs` runs: front matter, `show_doc` for every export, `#| hide` and exported cells
   removed, backticked symbols linked), into a temporary folder, not `_proc/` in the checkout. We
   call the processors directly because `nbdev-proc-nbs` first tries to install Quarto.
2. Each processed notebook is rendered to one HTML page: markdown through nbconvert's mistune
   renderer (which keeps `$...$` and `$$...$$` intact for MathJax), code through Pygments, outputs
   from the saved notebook (nothing is executed beyond what nbdev runs for `show_doc`), figures
   written to `<page>_files/figure-html/` as Quarto does. Quarto's cell options (`echo`, `output`,
   `include`, `code-fold`, `fig-cap`) are honoured; the title and subtitle come from the front
   matter nbdev extracts from the notebook's H1 and `>` line; the sidebar follows `nbs/sidebar.yml`.
3. MathJax 2 is copied from the `jupyter-server-mathjax` package into the site: no page loads
   anything from another host.

Why not nbconvert's `HTMLExporter` or mkdocs: the exporter rejects nbdev's processed notebooks
(extra `has_sd` keys, a float `metadata.execution.total`), knows no Quarto cell options or front
matter titles, and its templates load MathJax and require.js from a CDN; mkdocs-jupyter calls
nbconvert underneath, adds three dependencies and imposes its own page structure. Rendering the
few cell and output kinds nbdev produces is a short loop, and keeps Quarto's page structure
(title block, cells, outputs, sidebar, table of contents, prev/next links).

**README.** `readme` renders the processed `nbs/index.ipynb` to GitHub markdown the way
`nbdev-readme` does (title, hidden cells dropped, directives stripped, text outputs in code
blocks, images as files in `index_files/`, notebook links pointing at the hosted docs). It uses
this renderer even where Quarto exists, so README.md is byte-identical on every machine and
`readme --check` gives the same answer everywhere; `--quarto` runs `nbdev-readme` instead.
"""
from __future__ import annotations

import argparse, base64, concurrent.futures as cf, functools, html, http.server, json
import os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
README = ROOT/'README.md'
README_FILES = 'index_files/figure-commonmark'
IMG_MIMES = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/gif': 'gif'}
WIDGET = 'application/vnd.jupyter.widget-view+json'

def _log(*a): print('docs:', *a, flush=True)

@functools.lru_cache(None)
def config():
    "nbdev's configuration of this project (`[tool.nbdev]` in pyproject.toml)."
    from nbdev.config import get_config
    return get_config(ROOT)

def doc_url():
    "The hosted docs URL, ending in '/' (for links in the README), or ''."
    cfg = config()
    return f"{cfg.doc_host}{cfg.doc_baseurl.rstrip('/')}/" if cfg.doc_host else ''

def page_name(nb:Path) -> str:
    "The HTML file nbdev makes of notebook `nb` (`00_core.ipynb` -> `core.html`)."
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb.name)).name

# ---------------------------------------------------------------- notebooks and sidebar order

def notebooks(nbs:Path=NBS) -> list[Path]:
    "Notebooks that become pages (nbdev's rule: names not starting with `_` or `.`), index first."
    nbs_ = [p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.'))]
    return sorted(nbs_, key=lambda p: (p.name != 'index.ipynb', p.name))

def sidebar_yml(nbs:Path=NBS) -> str:
    "nbdev's `sidebar.yml` for the notebooks present, in file order: index, then 00, 01, ..."
    import yaml
    from nbdev.quarto import IndentDumper
    d = {'website': {'sidebar': {'contents': [p.name for p in notebooks(nbs)]}}}
    return yaml.dump(d, Dumper=IndentDumper, sort_keys=False)

def _flatten(items):
    for o in items or []:
        if isinstance(o, str): yield o
        elif isinstance(o, dict):
            if 'href' in o: yield o['href']
            if 'file' in o: yield o['file']
            yield from _flatten(o.get('contents'))

def sidebar_order(nbs:Path=NBS) -> list[Path]:
    "Notebooks in the order of `nbs/sidebar.yml`; any it does not list follow in file order."
    import yaml
    present = notebooks(nbs)
    listed = []
    p = nbs/'sidebar.yml'
    if p.exists():
        side = (yaml.safe_load(p.read_text(encoding='utf-8')) or {}).get('website', {}).get('sidebar', {})
        for s in (side if isinstance(side, list) else [side]):
            listed += [nbs/f for f in _flatten(s.get('contents')) if str(f).endswith('.ipynb')]
    order = [f for f in dict.fromkeys(listed) if f in present]
    for f in present:   # a notebook the sidebar does not list yet goes after its predecessor by name
        if f in order: continue
        before = [i for i, g in enumerate(order) if g.name < f.name or g.name == 'index.ipynb']
        order.insert(max(before) + 1 if before else 0, f)
    return order

# ---------------------------------------------------------------- nbdev processing

def _proc_worker(src:str, dst:str) -> str:
    "Run nbdev's doc processors on `src`, writing `dst`; on failure retry without `show_doc` runs."
    os.chdir(ROOT)
    import warnings; warnings.simplefilter('ignore')
    from nbdev.serve_drv import main
    from nbdev import processors
    from nbdev.processors import FilterDefaults, exec_show_docs
    # nbdev inserts each show_doc cell right after its export cell, one by one, so a cell that defines several
    # functions gets their cards in reverse; handing it the names reversed puts the cards in source order
    if not getattr(processors._def_names, 'in_source_order', False):
        names = processors._def_names
        def in_order(cell, shown): return list(reversed(names(cell, shown)))
        in_order.in_source_order = True
        processors._def_names = in_order
    # nbdev runs a cell that mixes imports with other code whole, to get the imports: a notebook's training cell
    # (`from ... import notebook_run; run = notebook_run(); train_gan(run)`) would train during the docs build, or fail
    # on a name an earlier, unrun cell defines. Run only such a cell's import statements.
    if not getattr(processors.exec_show_docs.__call__, 'imports_only', False):
        import ast
        run_cell = processors.exec_show_docs.__call__
        def imports_only(self, cell):
            if cell.cell_type == 'code' and cell.source and not (set(cell.directives_) & {'export', 'exports', 'exporti', 'exec_doc'}) \
               and hasattr(self, 'k') and self.nb.has_docs_:
                trees = cell.parsed_() or []
                imps = [t for t in trees if isinstance(t, (ast.Import, ast.ImportFrom))]
                if imps and len(imps) < len(trees) and not processors._show_docs(trees):
                    self.k.run_cell('\n'.join(ast.unparse(t) for t in imps))
                    return
            return run_cell(self, cell)
        imports_only.imports_only = True
        processors.exec_show_docs.__call__ = imports_only
    try:
        main((Path(src), Path(dst), FilterDefaults))
        return ''
    except Exception as e:
        msg = f'{Path(src).name}: show_doc not run ({type(e).__name__}: {str(e).splitlines()[-1][:200]})'
    class NoExec(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p is not exec_show_docs]
    main((Path(src), Path(dst), NoExec))
    return msg

def process_notebooks(srcs:list[Path], dest:Path, n_workers:int=None) -> dict:
    "Process `srcs` into `dest`, one fresh Python process per notebook; returns {notebook: problem}."
    dest.mkdir(parents=True, exist_ok=True)
    n_workers = n_workers or max(1, min(len(srcs), os.cpu_count() or 1, 4))
    def run(s):
        r = subprocess.run([sys.executable, __file__, '_proc', str(s), str(dest/s.name)],
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode: return f'{s.name}: skipped ({(r.stderr.strip().splitlines() or ["?"])[-1][:300]})'
        return r.stdout.strip()
    with cf.ThreadPoolExecutor(n_workers) as ex: msgs = dict(zip(srcs, ex.map(run, srcs)))
    return {s: m for s, m in msgs.items() if m}

# ---------------------------------------------------------------- cells and outputs

_re_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def split_directives(src:str) -> tuple[dict, str]:
    "Quarto/nbdev `#| key: value` lines at the top of a code cell, and the code without them."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_directive.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('\'"')
        lines.pop(0)
    return opts, '\n'.join(lines).strip('\n')

def _false(v): return str(v).lower() in ('false', 'no', '0')

def _text(x): return ''.join(x) if isinstance(x, list) else (x or '')

_re_ansi = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

def _front_matter(nb) -> dict:
    import yaml
    for c in nb['cells']:
        s = _text(c['source']).strip()
        if c['cell_type'] == 'raw' and s.startswith('---'):
            return yaml.safe_load(s.strip('-\n')) or {}
    return {}

def _out_mime(o, order):
    data = o.get('data', {})
    return next((m for m in order if m in data), None)

def cell_outputs(cell):
    "The outputs of a code cell as (kind, payload): kind is a mime type, 'stream', 'stderr' or 'error'."
    for o in cell.get('outputs', []):
        t = o['output_type']
        if t == 'stream': yield ('stderr' if o.get('name') == 'stderr' else 'stream'), _text(o['text'])
        elif t == 'error': yield 'error', _re_ansi.sub('', '\n'.join(o.get('traceback') or [f"{o['ename']}: {o['evalue']}"]))
        elif t in ('display_data', 'execute_result'): yield 'data', o

def _strip_scripts(h:str) -> str:
    return re.sub(r'<(script|style)\b.*?</\1>', '', h, flags=re.S|re.I)

# ---------------------------------------------------------------- README

def _readme_links(md:str) -> str:
    "Point relative notebook/page links at the hosted docs, as nbdev's README filter does."
    base = doc_url()
    if not base: return md
    def f(m):
        t = m.group(2)
        if re.match(r'^[a-z]+:|^#|^/', t): return m.group(0)
        path, _, frag = t.partition('#')
        if path.endswith('.ipynb'): path = page_name(Path(path))
        elif path.endswith(('.qmd', '.md')) and path != 'README.md': path = re.sub(r'\.q?md$', '.html', path)
        elif not path.endswith('.html'): return m.group(0)
        return f"{m.group(1)}({base}{path}{'#'+frag if frag else ''})"
    return re.sub(r'(\]\s*)\(([^)\s]+)\)', f, md)

def readme_markdown(nb_path:Path=NBS/'index.ipynb') -> tuple[str, dict]:
    "README text and {relative image path: bytes} from the index notebook, processed by nbdev."
    from fastcore.nbio import read_nb, nb2dict
    from nbdev.processors import FilterDefaults
    cwd = os.getcwd(); os.chdir(ROOT)
    try:
        nb = read_nb(nb_path)
        FilterDefaults()(nb)
    finally: os.chdir(cwd)
    nb = nb2dict(nb)
    fm = _front_matter(nb)
    parts, images = [f"# {fm.get('title', config().title)}"], {}
    if fm.get('description'): parts.append(f"> {fm['description']}")
    for i, c in enumerate(nb['cells']):
        src = _text(c['source'])
        if c['cell_type'] == 'markdown':
            if src.strip(): parts.append(_readme_links(src.strip()))
            continue
        if c['cell_type'] != 'code': continue
        opts, code = split_directives(src)
        if _false(opts.get('include', True)): continue
        if code and not _false(opts.get('echo', True)):
            parts.append(f"```{c.get('metadata', {}).get('language', 'python')}\n{code}\n```")
        if _false(opts.get('output', True)): continue
        for j, (kind, o) in enumerate(cell_outputs(c)):
            if kind in ('stream', 'stderr', 'error'):
                if o.strip(): parts.append(f"```\n{o.rstrip()}\n```")
                continue
            m = _out_mime(o, ('image/png', 'image/jpeg', 'image/gif', 'text/markdown', 'text/html', 'text/plain'))
            v = o['data'].get(m)
            if m in IMG_MIMES:
                rel = f'{README_FILES}/cell-{i}-output-{j}.{IMG_MIMES[m]}'
                images[rel] = base64.b64decode(_text(v))
                parts.append(f"![{opts.get('fig-cap', '')}]({rel})")
            elif m == 'text/markdown': parts.append(_readme_links(_text(v).strip()))
            elif m == 'text/html': parts.append(_strip_scripts(_text(v)).strip())
            elif m == 'text/plain' and WIDGET not in o['data']: parts.append(f"```\n{_text(v).rstrip()}\n```")
    text = '\n\n'.join(p for p in parts if p) + '\n'
    return text, images

def _readme_state():
    imgdir = ROOT/README_FILES
    old = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in imgdir.glob('*')} if imgdir.exists() else {}
    return (README.read_text(encoding='utf-8') if README.exists() else None), old

def cmd_readme(check:bool=False, quarto:bool=False) -> int:
    nb = NBS/config().readme_nb
    if not nb.exists():
        print(f'docs: {nb.relative_to(ROOT)} not found, so README.md cannot be made'); return 1
    if quarto:
        if not shutil.which('quarto'): print('docs: --quarto asked for, but quarto is not installed'); return 1
        _log('README.md with Quarto (nbdev-readme)')
        return subprocess.call(['nbdev-readme'], cwd=ROOT)
    text, images = readme_markdown(nb)
    old_text, old_images = _readme_state()
    if check:
        if old_text != text or old_images != images:
            print('README.md is stale: run `python tools/docs.py readme` (or `make readme`)'); return 1
        print('README.md is current'); return 0
    for rel in set(old_images) - set(images): (ROOT/rel).unlink()
    for rel, b in images.items():
        (ROOT/rel).parent.mkdir(parents=True, exist_ok=True)
        if old_images.get(rel) != b: (ROOT/rel).write_bytes(b)
    if old_text != text: README.write_text(text, encoding='utf-8', newline='\n')
    _log(f'README.md {"written" if old_text != text else "unchanged"} from {nb.relative_to(ROOT)} '
         f'({len(images)} image{"s"*(len(images)!=1)})')
    return 0

# ---------------------------------------------------------------- HTML pages

def slugify(text:str) -> str:
    "Pandoc's heading identifiers (which Quarto and nbdev's doc links use): `Preset.validate` -> `preset.validate`."
    t = html.unescape(re.sub(r'<[^>]+>', '', text)).strip().lower()
    t = re.sub(r'[^\w\s.-]', '', t)
    t = re.sub(r'\s+', '-', t)
    t = re.sub(r'^[^a-z]+', '', t)
    return t or 'section'

_re_attr_link = re.compile(r'(!?)\[([^\]]*)\]\(([^)\s]+)\)\{([^}]*)\}')

def _pandoc_attrs(s:str) -> str:
    "Pandoc's `{.class #id key=value}` attribute text as HTML attributes."
    classes = re.findall(r'(?:^|\s)\.([\w-]+)', s)
    ids = re.findall(r'(?:^|\s)#([\w-]+)', s)
    kv = re.findall(r'([\w-]+)=("[^"]*"|\'[^\']*\'|\S+)', s)
    out = [f'class="{" ".join(classes)}"'] if classes else []
    out += [f'id="{ids[0]}"'] if ids else []
    for k, v in kv:
        v = v.strip('"\'')
        if k in ('width', 'height') and v.endswith('%'): out.append(f'style="{k}:{v}"')
        else: out.append(f'{k}="{html.escape(v)}"')
    return ' '.join(out)

def pandoc_to_commonmark(md:str) -> str:
    "Translate the bits of Pandoc markdown nbdev emits (link attributes, `:::` divs) into HTML."
    def link(m):
        bang, text, url, attrs = m.groups()
        a = _pandoc_attrs(attrs)
        if bang: return f'<img src="{url}" alt="{html.escape(text)}" {a}>'
        return f'<a href="{url}" {a}>{text}</a>'
    md = _re_attr_link.sub(link, md)
    out = []
    for line in md.split('\n'):
        m = re.match(r'^\s*:{3,}\s*(\{([^}]*)\}|[\w-]+)?\s*$', line)
        if m and (m.group(1) is not None):
            attrs = m.group(2) if m.group(2) is not None else '.' + m.group(1)
            cls = ' '.join(re.findall(r'\.([\w-]+)', attrs))
            out += ['', f'<div class="{cls}">', '']
        elif m: out += ['', '</div>', '']
        else: out.append(line)
    return '\n'.join(out)

class Page:
    "One page of the site: renders a processed notebook's cells and collects its table of contents."
    def __init__(self, stem:str, site:Path):
        self.stem, self.site, self.toc, self.ids, self.n_figures = stem, site, [], set(), 0
        from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
        page = self
        class Renderer(IPythonRenderer):
            def heading(self, text, level, **attrs):
                hid = page.unique_id(slugify(text))
                if level in (2, 3): page.toc.append((level, hid, re.sub(r'<[^>]+>', '', text)))
                return (f'<h{level} id="{hid}" class="anchored">{text}'
                        f'<a class="anchor-link" href="#{hid}" aria-label="Link to this section">#</a></h{level}>\n')
        self._md = lambda s: MarkdownWithMath(renderer=Renderer(escape=False)).render(s)

    def unique_id(self, hid):
        base, i = hid, 0
        while hid in self.ids: i += 1; hid = f'{base}-{i}'
        self.ids.add(hid)
        return hid

    def markdown(self, md:str) -> str: return self._md(pandoc_to_commonmark(md))

    def code(self, code:str, lang:str) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
        try: lexer = get_lexer_by_name(lang)
        except ClassNotFound: lexer = get_lexer_by_name('text')
        return highlight(code, lexer, HtmlFormatter(cssclass='sourceCode highlight'))

    def figure(self, data:str, ext:str, cell_i:int, out_j:int, cap:str='') -> str:
        rel = f'{self.stem}_files/figure-html/cell-{cell_i}-output-{out_j}.{ext}'
        (self.site/rel).parent.mkdir(parents=True, exist_ok=True)
        if ext == 'svg': (self.site/rel).write_text(data, encoding='utf-8')
        else: (self.site/rel).write_bytes(base64.b64decode(data))
        self.n_figures += 1
        capt = f'<figcaption>{html.escape(cap)}</figcaption>' if cap else ''
        return f'<figure class="figure"><img src="{rel}" alt="{html.escape(cap)}" class="img-fluid">{capt}</figure>'

    def output(self, kind, o, cell_i, out_j, opts) -> str:
        from nbconvert.filters.ansi import ansi2html
        if kind in ('stream', 'stderr'):
            return f'<div class="cell-output cell-output-{"stderr" if kind=="stderr" else "stdout"}"><pre>{ansi2html(o)}</pre></div>'
        if kind == 'error':
            return f'<div class="cell-output cell-output-error"><pre>{html.escape(o)}</pre></div>'
        order = ('text/html', 'text/markdown', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif', 'text/latex', 'text/plain')
        m = _out_mime(o, order)
        v = _text(o['data'].get(m))
        if m == 'text/html': body = f'<div class="cell-output-display">{v}</div>'
        elif m == 'text/markdown': body = f'<div class="cell-output-markdown">{self.markdown(v)}</div>'
        elif m == 'image/svg+xml': body = self.figure(v, 'svg', cell_i, out_j, opts.get('fig-cap', ''))
        elif m in IMG_MIMES: body = self.figure(v, IMG_MIMES[m], cell_i, out_j, opts.get('fig-cap', ''))
        elif m == 'text/latex': body = f'<div class="cell-output-display">{html.escape(v)}</div>'
        elif m == 'text/plain' and WIDGET in o['data']:   # a live widget needs a kernel: say so
            body = '<p class="widget-note">An interactive widget: run this notebook in Jupyter to use it.</p>'
        elif m == 'text/plain': body = f'<pre>{html.escape(v)}</pre>'
        else: return ''
        return f'<div class="cell-output">{body}</div>'

    def cell(self, c, i) -> str:
        src = _text(c['source'])
        if c['cell_type'] == 'markdown': return self.markdown(src)
        if c['cell_type'] == 'raw':
            fmt = c.get('metadata', {}).get('format') or c.get('metadata', {}).get('raw_mimetype', '')
            return src if 'html' in fmt else ''
        opts, code = split_directives(src)
        if _false(opts.get('include', True)): return ''
        parts = []
        if code and not _false(opts.get('echo', True)):
            h = self.code(code, c.get('metadata', {}).get('language', 'python'))
            fold = opts.get('code-fold')
            if fold and not _false(fold):
                summ = html.escape(opts.get('code-summary', 'Code'))
                h = f'<details class="code-fold"{" open" if fold == "show" else ""}><summary>{summ}</summary>{h}</details>'
            parts.append(h)
        if not _false(opts.get('output', True)):
            parts += [self.output(k, o, i, j, opts) for j, (k, o) in enumerate(cell_outputs(c))]
        parts = [p for p in parts if p]
        return f'<div class="cell">{"".join(parts)}</div>' if parts else ''

def inline_markdown(text:str) -> str:
    "A one-line subtitle as HTML: escaped, with `code` spans as <code> (no raw backticks on the page)."
    parts = re.split(r'`([^`]+)`', text)
    return ''.join(f'<code>{html.escape(p)}</code>' if i % 2 else html.escape(p) for i, p in enumerate(parts))

def wrap_tables(h:str) -> str:
    "Each table in a box of the content's width: a table wider than that scrolls inside its box, which then says so (`TABLE_SCRIPT`)."
    h = re.sub(r'<table\b', '<div class="table-wrap"><table', h)
    return h.replace('</table>', '</table></div>')

def _local_links(h:str) -> str:
    "Make nbdev's absolute doc links and links to notebooks point at pages of this site."
    base = doc_url()
    def f(m):
        q, url = m.group(1), html.unescape(m.group(2))
        if base and url.startswith(base): url = url[len(base):] or 'index.html'
        path, sep, frag = url.partition('#')
        if not re.match(r'^[a-z]+:|^/', path):
            if path.endswith('.ipynb'): path = page_name(Path(path))
            elif path.endswith('.qmd'): path = path[:-4] + '.html'
        return f'href={q}{html.escape(path + sep + frag, quote=True)}{q}'
    return re.sub(r'href=(["\'])(.*?)\1', f, h)

MATHJAX_CONFIG = r"""<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [['$','$'], ['\\(','\\)']], displayMath: [['$$','$$'], ['\\[','\\]']],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], imageFont: null, preferredFont: null, webFont: "STIX-Web",
               linebreaks: {automatic: true}},
  MMLorHTML: {prefer: "HTML"},
  showMathMenu: false, messageStyle: "none"
});
</script>"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title_text}</title>
<meta name="description" content="{description_attr}">
{styles_css}<link rel="stylesheet" href="site.css">
<link rel="stylesheet" href="pygments.css">
{mathjax_config}
<script src="mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"></script>
</head>
<body>
<header class="navbar"><a class="navbar-brand" href="index.html">{site_title}</a>
<span class="navbar-description">{site_description}</span>{repo}</header>
<div class="layout">
<nav id="sidebar" class="sidebar" aria-label="Pages"><ul>
{sidebar}
</ul></nav>
<main id="quarto-document-content" class="content">
<header id="title-block-header"><h1 class="title">{title}</h1>{description}</header>
{body}
<nav class="page-navigation">{prev_next}</nav>
</main>
<nav id="TOC" class="toc" aria-label="On this page">{toc}</nav>
</div>
<footer class="footer">{site_title}: built from the notebooks in <code>nbs/</code> by <code>tools/docs.py</code>.</footer>
{table_script}
</body>
</html>
"""

TABLE_SCRIPT = """<script>
// a table wider than the page's text column scrolls inside its box: say so above it
function markWideTables() {
  document.querySelectorAll('.table-wrap').forEach(w => {
    const wide = w.scrollWidth > w.clientWidth + 1;
    w.classList.toggle('is-wide', wide);
    if (wide) w.setAttribute('tabindex', '0'); else w.removeAttribute('tabindex');
    let hint = w.previousElementSibling;
    if (wide && !(hint && hint.classList.contains('table-hint'))) {
      hint = document.createElement('p'); hint.className = 'table-hint';
      hint.textContent = '↔ A wide table: scroll sideways inside the box to see every column.';
      w.before(hint);
    }
    if (hint && hint.classList.contains('table-hint')) hint.hidden = !wide;
  });
}
markWideTables(); window.addEventListener('load', markWideTables); window.addEventListener('resize', markWideTables);
</script>"""

SITE_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg-code:#f6f8fa; --accent:#2c5aa0; --side:17rem; --toc:15rem; }
* { box-sizing: border-box; }
html { scroll-padding-top: 4rem; }
body { margin:0; color:var(--fg); background:#fff; font: 16px/1.65 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
code, pre { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .875em; }
:not(pre) > code { background:var(--bg-code); padding:.1em .35em; border-radius:4px; }
.navbar { position:sticky; top:0; z-index:10; display:flex; align-items:baseline; gap:1rem; padding:.7rem 1.5rem; background:#2c3e50; color:#fff; }
.navbar-brand { color:#fff; font-weight:700; font-size:1.15rem; }
.navbar-description { color:#c8d3de; font-size:.9rem; overflow:hidden; white-space:nowrap; text-overflow:ellipsis; flex:1; }
.navbar .repo { color:#fff; font-size:.9rem; }
.layout { display:grid; grid-template-columns: var(--side) minmax(0, 1fr) var(--toc); max-width: 92rem; margin:0 auto; }
.sidebar, .toc { position:sticky; top:3.2rem; align-self:start; max-height:calc(100vh - 3.2rem); overflow-y:auto; padding:1.5rem 1rem; font-size:.92rem; }
.sidebar ul, .toc ul { list-style:none; margin:0; padding:0; }
.sidebar li a { display:block; padding:.3rem .7rem; border-radius:6px; color:var(--fg); }
.sidebar li a:hover { background:#eef2f6; text-decoration:none; }
.sidebar li a.active { background:#e3ebf6; color:var(--accent); font-weight:600; }
.toc { border-left:1px solid var(--line); }
.toc h2 { font-size:.8rem; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); margin:0 0 .5rem; }
.toc li a { display:block; padding:.15rem 0; color:var(--muted); }
.toc li.toc-3 a { padding-left:.9rem; font-size:.88rem; }
.content { min-width:0; max-width: 50rem; padding: 1.5rem 2.5rem 3rem; }
#title-block-header { margin-bottom:2rem; }
h1.title { font-size:2.3rem; line-height:1.2; margin:.5rem 0 .4rem; }
.description { font-size:1.2rem; color:var(--muted); font-style:italic; }
h2 { margin-top:2.5rem; padding-bottom:.3rem; border-bottom:1px solid var(--line); font-size:1.6rem; line-height:1.3; }
h3 { margin-top:1.8rem; font-size:1.25rem; } h4 { font-size:1.05rem; }
.anchor-link { visibility:hidden; margin-left:.4rem; color:var(--muted); font-weight:400; }
h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility:visible; }
p, li { overflow-wrap: anywhere; }
pre { background:var(--bg-code); padding: .8rem 1rem; border-radius:6px; overflow-x:auto; line-height:1.45; margin:0; }
.cell { margin: 1rem 0 1.4rem; }
.cell > .sourceCode pre, .cell > details > .sourceCode pre { border-left:3px solid #9fb7d9; }
.cell-output { margin-top:.35rem; overflow-x:auto; }
.cell-output > pre, .cell-output-stdout > pre, .cell-output-stderr > pre, .cell-output-error > pre { background:none; border-left:2px solid lightsalmon; border-radius:0; margin-left:.8rem; }
.cell-output-stderr > pre { color:#8a6d3b; } .cell-output-error > pre { color:#a12; }
.cell-output > .cell-output-markdown, .cell-output > .cell-output-display { display:block; }
.cell-output-markdown { border:1px solid var(--line); border-radius:8px; padding:.2rem 1.2rem .6rem; margin:.5rem 0; box-shadow:0 1px 2px rgba(0,0,0,.04); }
.cell-output-markdown hr { display:none; }
.cell-output-markdown h3, .cell-output-markdown h4 { margin-top:.8rem; font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", monospace; font-size:1.05rem; }
.cell-output-markdown a[target="_blank"] { float:right; font-size:.8rem; margin-top:.9rem; }
details.code-fold > summary { cursor:pointer; color:var(--muted); font-size:.9rem; margin-bottom:.3rem; }
figure { margin: .5rem 0; } figure img, .cell-output img, .content img { max-width:100%; height:auto; }
figcaption { color:var(--muted); font-size:.9rem; font-style:italic; text-align:center; }
table[border] { border:none; }
table { border-collapse:collapse; margin:0; font-size:.9rem; }
.table-wrap { max-width:100%; overflow-x:auto; margin:.8rem 0; }
.table-wrap.is-wide { border:1px solid var(--line); border-radius:6px; padding:.3rem; box-shadow: inset -12px 0 10px -10px rgba(0,0,0,.3); }
.table-wrap.is-wide:focus { outline:2px solid var(--accent); }
.table-hint { margin:.8rem 0 -.5rem; font-size:.82rem; color:var(--muted); font-style:italic; }
.cell-output-display { max-width:100%; }
th, td { border:1px solid var(--line); padding:.3rem .6rem; text-align:left; vertical-align:top; }
thead th, table.dataframe th { background:#f3f5f7; }
blockquote { margin:1rem 0; padding:.2rem 1rem; border-left:4px solid var(--line); color:var(--muted); }
.callout, .callout-note, .callout-tip, .callout-warning, .callout-important, .callout-caution { border-left:4px solid var(--accent); background:#f4f8fd; padding:.2rem 1rem; margin:1rem 0; border-radius:4px; }
.callout-warning, .callout-caution { border-color:#d4a017; background:#fdf9ee; } .callout-important { border-color:#c0392b; background:#fdf3f2; }
.widget-note { color:var(--muted); font-style:italic; border:1px dashed var(--line); border-radius:6px; padding:.5rem .8rem; }
.page-navigation { display:flex; justify-content:space-between; gap:1rem; margin-top:3rem; padding-top:1rem; border-top:1px solid var(--line); }
.page-navigation a { display:block; padding:.6rem .9rem; border:1px solid var(--line); border-radius:8px; max-width:48%; }
.page-navigation .nav-label { display:block; font-size:.78rem; color:var(--muted); }
.footer { border-top:1px solid var(--line); color:var(--muted); font-size:.85rem; text-align:center; padding:1.2rem; }
.MathJax_Display { overflow-x:auto; overflow-y:hidden; }
/* MathJax's hidden MathML copy (for screen readers) must not ask for the TeX web fonts we do not ship */
.MJX_Assistive_MathML [mathvariant] { font-family: inherit !important; }
@media (max-width: 75rem) { .layout { grid-template-columns: var(--side) minmax(0,1fr); } .toc { display:none; } }
@media (max-width: 48rem) { .layout { display:block; } .sidebar { position:static; max-height:none; border-bottom:1px solid var(--line); } .content { padding:1rem; } }
"""

def _mathjax_dir() -> Path:
    try: import jupyter_server_mathjax
    except ImportError: raise SystemExit('docs: MathJax is missing: pip install jupyter-server-mathjax (in the dev extra)')
    return Path(jupyter_server_mathjax.__file__).parent/'static'

def _home_without_index(site_title, description, entries) -> tuple[str, str]:
    items = ''.join(f'<li><a href="{href}">{html.escape(t)}</a></li>' for href, t in entries)
    return site_title, f'<p>{html.escape(description)}</p><ul>{items}</ul>'

def build_fallback(out:Path, nbs:Path=NBS, n_workers:int=None, proc:Path=None) -> dict:
    "Build the site of the notebooks in `nbs` into `out` without Quarto; returns `out/pages.json`'s summary."
    cfg = config()
    srcs = sidebar_order(nbs)
    tmp = Path(tempfile.mkdtemp(prefix='animestyle-docs-'))
    try:
        if proc is None:   # `proc`: notebooks processed earlier, to re-render without re-processing
            problems = process_notebooks(srcs, tmp/'proc', n_workers)
        else: shutil.copytree(proc, tmp/'proc'); problems = {}
        for p in problems.values(): _log('warning:', p)
        site = tmp/'site'
        site.mkdir()
        items = []
        for s in srcs:
            p = tmp/'proc'/s.name
            if not p.exists(): continue
            nb = json.loads(p.read_text(encoding='utf-8'))
            fm = _front_matter(nb)
            items.append((s, nb, fm, fm.get('output-file') or page_name(s)))
        entries = [(name, fm.get('title') or s.stem) for s, nb, fm, name in items]
        if not any(name == 'index.html' for *_, name in items):
            entries.insert(0, ('index.html', 'Home'))
        active = ' class="active" aria-current="page"'
        sidebar = lambda cur: '\n'.join(
            f'<li><a href="{h}"{active if h == cur else ""}>{html.escape(t)}</a></li>' for h, t in entries)
        repo = f' <a class="repo" href="{cfg.git_url}">Source</a>' if cfg.get('git_url') else ''
        styles = '<link rel="stylesheet" href="styles.css">\n' if (NBS/'styles.css').exists() else ''
        def prev_next(cur):
            hrefs = [h for h, _ in entries]
            i = hrefs.index(cur)
            res = ''
            if i > 0: res += f'<a class="prev" href="{entries[i-1][0]}"><span class="nav-label">Previous</span>{html.escape(entries[i-1][1])}</a>'
            else: res += '<span></span>'
            if i+1 < len(entries): res += f'<a class="next" href="{entries[i+1][0]}"><span class="nav-label">Next</span>{html.escape(entries[i+1][1])}</a>'
            return res
        def write(name, title, desc, body, toc):
            toc_html = ('<h2>On this page</h2><ul>' + ''.join(
                f'<li class="toc-{l}"><a href="#{i}">{html.escape(html.unescape(t))}</a></li>' for l, i, t in toc) + '</ul>') if toc else ''
            page = PAGE.format(
                title_text=html.escape(title if title == cfg.title else f'{title} – {cfg.title}'),
                description_attr=html.escape((desc or cfg.get('description', '')).replace('`', ''), quote=True),
                styles_css=styles, mathjax_config=MATHJAX_CONFIG, site_title=html.escape(cfg.title),
                site_description=html.escape(cfg.get('description', '')), repo=repo, sidebar=sidebar(name),
                title=html.escape(title), description=f'<p class="description">{inline_markdown(desc)}</p>' if desc else '',
                body=wrap_tables(body), prev_next=prev_next(name), toc=toc_html, table_script=TABLE_SCRIPT)
            (site/name).write_text(page, encoding='utf-8')
        summary = {'renderer': 'nbconvert', 'pages': [], 'problems': {k.name: v for k, v in problems.items()}}
        for s, nb, fm, name in items:
            pg = Page(Path(name).stem, site)
            body = '\n'.join(pg.cell(c, i) for i, c in enumerate(nb['cells'])
                             if not (c['cell_type'] == 'raw' and _text(c['source']).strip().startswith('---')))
            title = fm.get('title') or s.stem
            write(name, title, fm.get('description', ''), _local_links(body), pg.toc)
            summary['pages'].append({'notebook': s.name, 'page': name, 'title': title, 'figures': pg.n_figures})
        if not any(name == 'index.html' for *_, name in items):
            t, body = _home_without_index(cfg.title, cfg.get('description', ''), entries[1:])
            write('index.html', t, '', body, [])
            summary['pages'].insert(0, {'notebook': None, 'page': 'index.html', 'title': t, 'figures': 0})
        from pygments.formatters import HtmlFormatter
        (site/'site.css').write_text(SITE_CSS.lstrip(), encoding='utf-8')
        (site/'pygments.css').write_text(HtmlFormatter(style='friendly').get_style_defs('.highlight'), encoding='utf-8')
        if styles: shutil.copy2(NBS/'styles.css', site/'styles.css')
        for f in nbs.rglob('*'):   # images the notebooks' markdown may reference
            rel = f.relative_to(nbs)
            if f.is_file() and f.suffix.lower() in ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp') \
               and not any(p.startswith(('.', '_')) for p in rel.parts):
                (site/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, site/rel)
        shutil.copytree(_mathjax_dir(), site/'mathjax', ignore=shutil.ignore_patterns('a11y', 'localization'))
        (site/'pages.json').write_text(json.dumps(summary, indent=1) + '\n', encoding='utf-8')
        (site/'.nojekyll').touch()
        if out.exists(): shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(site), str(out))
        return summary
    finally: shutil.rmtree(tmp, ignore_errors=True)

def cmd_sidebar(check:bool=False) -> int:
    p, new = NBS/'sidebar.yml', sidebar_yml()
    cur = p.read_text(encoding='utf-8') if p.exists() else None
    if check:
        if cur != new: print('nbs/sidebar.yml is stale: run `python tools/docs.py sidebar`'); return 1
        return 0
    if cur != new: p.write_text(new, encoding='utf-8'); _log('nbs/sidebar.yml updated')
    return 0

def cmd_build(out:str='_docs', quarto:bool=None, nbs:str=None) -> int:
    out = (ROOT/out).resolve()
    nbs = (ROOT/nbs).resolve() if nbs else NBS
    found = bool(shutil.which('quarto'))
    use_quarto = found if quarto is None else quarto
    t0 = time.time()
    if use_quarto:
        if not found: print('docs: --quarto asked for, but quarto is not installed'); return 1
        if nbs != NBS: print('docs: --nbs works only without Quarto'); return 1
        _log('Quarto found: building with nbdev-docs')
        cmd_sidebar()
        rc = subprocess.call(['nbdev-docs'], cwd=ROOT)
        if rc: return rc
        doc_path = config().doc_path
        if out != doc_path.resolve():
            if out.exists(): shutil.rmtree(out)
            shutil.copytree(doc_path, out)
        _log(f'site in {out} ({time.time()-t0:.0f} s, Quarto)')
        return 0
    why = 'Quarto not found' if not found else '--no-quarto given'
    _log(f'{why}: building without Quarto (nbdev processors + nbconvert, local MathJax)')
    s = build_fallback(out, nbs)
    _log(f"{len(s['pages'])} pages in {out} ({time.time()-t0:.0f} s, no Quarto)")
    return 0

def _stale(out:Path) -> bool:
    stamp = out/'pages.json'
    if not stamp.exists(): return True
    srcs = notebooks() + [p for p in (NBS/'sidebar.yml', NBS/'styles.css', Path(__file__)) if p.exists()]
    return max(p.stat().st_mtime for p in srcs) > stamp.stat().st_mtime

def cmd_serve(port:int=8000, out:str='_docs') -> int:
    outp = ROOT/out
    if _stale(outp) or not (outp/'index.html').exists():
        rc = cmd_build(out)
        if rc: return rc
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(outp))
    with http.server.ThreadingHTTPServer(('127.0.0.1', port), handler) as srv:
        _log(f'serving {outp} at http://127.0.0.1:{srv.server_address[1]}/ (Ctrl-C stops)')
        try: srv.serve_forever()
        except KeyboardInterrupt: pass
    return 0

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('readme', help='README.md from nbs/index.ipynb')
    r.add_argument('--check', action='store_true', help='exit 1 if README.md is not current')
    r.add_argument('--quarto', action='store_true', help='use nbdev-readme (needs Quarto)')
    b = sub.add_parser('build', help='build the documentation site')
    b.add_argument('--out', default='_docs')
    b.add_argument('--nbs', default=None, help='notebook folder (default nbs/; without Quarto only)')
    g = b.add_mutually_exclusive_group()
    g.add_argument('--quarto', dest='quarto', action='store_true', default=None, help='insist on Quarto')
    g.add_argument('--no-quarto', dest='quarto', action='store_false', help='build without Quarto even if installed')
    s = sub.add_parser('serve', help='build if needed and serve on 127.0.0.1')
    s.add_argument('--port', type=int, default=8000)
    s.add_argument('--out', default='_docs')
    sb = sub.add_parser('sidebar', help='write nbs/sidebar.yml from the notebooks present')
    sb.add_argument('--check', action='store_true')
    if argv is None and sys.argv[1:2] == ['_proc']:   # internal: one notebook, in its own process
        msg = _proc_worker(*sys.argv[2:4])
        if msg: print(msg)
        return 0
    a = ap.parse_args(argv)
    if a.cmd == 'readme': return cmd_readme(a.check, a.quarto)
    if a.cmd == 'build': return cmd_build(a.out, a.quarto, a.nbs)
    if a.cmd == 'serve': return cmd_serve(a.port, a.out)
    return cmd_sidebar(a.check)

if __name__ == '__main__': sys.exit(main())
