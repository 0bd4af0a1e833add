"""Execute the course notebooks in place, in order, and store lean outputs so every figure shows on GitHub.

    .venv/bin/python tools/execute_notebooks.py                       # index + every chapter nbs/NN_*.ipynb, in order
    .venv/bin/python tools/execute_notebooks.py nbs/00_golay.ipynb    # just these notebooks
    .venv/bin/python tools/execute_notebooks.py --flags slow          # also run the `#| slow` cells (long experiments)
    .venv/bin/python tools/execute_notebooks.py --check               # only report sizes and problems, execute nothing

Each notebook runs in a fresh Jupyter kernel (the same Python as this script) with `nbs/` as working directory, like
`nbdev-test`. Cells that `nbdev-test` skips are skipped here too: `#| eval: false`, and cells whose directives name a
test flag from `[tool.nbdev] tst_flags` (e.g. `#| slow`) unless that flag is passed with `--flags`. A skipped cell keeps
whatever outputs it had. Outputs are kept small: matplotlib figures are PNG at `--dpi` (default 90), plotly figures use
the `notebook_connected` renderer (plotly.js is loaded from its CDN, never embedded), and widget state is not stored.
Afterwards `nbdev-clean` runs on the executed notebooks, so the CI check "nbdev-export and nbdev-clean leave git status
clean" holds with the outputs committed. The script stops at the first failing cell and leaves that notebook unchanged.
"""
from __future__ import annotations
import argparse, json, os, re, sys, time, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
MAX_BYTES = 2_000_000                     # a notebook above this size is reported as too big
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:?\s*(.*)$')


def default_notebooks() -> list[Path]:
    "The course in reading order: index first, then the chapters NN_*.ipynb sorted by name."
    chapters = sorted(p for p in NBS.glob('[0-9]*.ipynb'))
    return ([NBS / 'index.ipynb'] if (NBS / 'index.ipynb').exists() else []) + chapters


def nbdev_test_flags() -> set[str]:
    "The flags that mark cells nbdev-test skips by default, from pyproject.toml's [tool.nbdev] tst_flags."
    cfg = tomllib.loads((ROOT / 'pyproject.toml').read_text()).get('tool', {}).get('nbdev', {})
    flags = cfg.get('tst_flags', '')
    return set(flags.split() if isinstance(flags, str) else flags)


def directives(source: str) -> dict[str, str]:
    "The nbdev directives (`#| name: value` lines) at the top of a cell."
    out = {}
    for line in source.splitlines():
        if not line.strip(): continue
        m = _DIRECTIVE.match(line)
        if not m: break
        out[m.group(1)] = m.group(2).strip()
    return out


def skipped(cell, skip: set[str]) -> bool:
    "Whether nbdev-test would leave this cell out: markdown, `eval: false`, or a skipped test flag."
    if cell.cell_type != 'code': return True
    d = directives(cell.source)
    if d.get('eval', '').lower() == 'false': return True
    return bool(skip & d.keys())


SETUP = """\
%config InlineBackend.figure_formats = ['png']
%config InlineBackend.rc = {{'figure.dpi': {dpi}, 'savefig.dpi': {dpi}}}
"""


def execute(path: Path, skip: set[str], dpi: int, timeout: int | None) -> float:
    "Run one notebook in a fresh kernel and write it back; returns the seconds it took."
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm
    nb = nbformat.read(path, as_version=4)
    todo = [k for k, c in enumerate(nb.cells) if not skipped(c, skip)]
    env = dict(os.environ, PLOTLY_RENDERER='notebook_connected', MPLBACKEND='module://matplotlib_inline.backend_inline',
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep))
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', store_widget_state=False,
                            record_timing=False, resources={'metadata': {'path': str(path.parent)}})
    t0 = time.time()
    with client.setup_kernel(env=env, cwd=str(path.parent)):
        nb.cells.append(nbformat.v4.new_code_cell(SETUP.format(dpi=dpi)))        # a setup cell, removed again below
        client.execute_cell(nb.cells[-1], len(nb.cells) - 1)
        nb.cells.pop()
        for k in tqdm(todo, desc=path.name, unit='cell', leave=False):
            client.execute_cell(nb.cells[k], k)
    nbformat.write(nb, path)
    return time.time() - t0


def problems(path: Path) -> list[str]:
    "What is wrong with a notebook's stored outputs: too big, embedded plotly.js, errors."
    text = path.read_text()
    out = []
    if len(text.encode()) > MAX_BYTES: out.append(f'{len(text.encode()) / 1e6:.1f} MB > {MAX_BYTES / 1e6:.0f} MB')
    for c in json.loads(text)['cells']:
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': out.append(f"error output: {o.get('ename')}")
            html = ''.join(o.get('data', {}).get('text/html', ''))
            if len(html) > 100_000 and 'plotly' in html: out.append('embedded plotly.js (use a CDN renderer)')
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('notebooks', nargs='*', type=Path, help='notebooks to execute (default: index + every chapter)')
    p.add_argument('--flags', default='', help='space-separated test flags whose cells to run too, e.g. "slow"')
    p.add_argument('--dpi', type=int, default=90, help='resolution of matplotlib PNGs')
    p.add_argument('--timeout', type=int, default=1800, help='seconds per cell before giving up')
    p.add_argument('--check', action='store_true', help='execute nothing; only report sizes and problems')
    args = p.parse_args(argv)
    paths = [q.resolve() for q in args.notebooks] or default_notebooks()
    for q in paths:
        if not q.exists(): p.error(f'no such notebook: {q}')
    skip = nbdev_test_flags() - set(args.flags.split())
    if not args.check:
        for q in paths:
            print(f'{q.relative_to(ROOT)}: executing ...', flush=True)
            dt = execute(q, skip, args.dpi, args.timeout)
            print(f'{q.relative_to(ROOT)}: {dt:.0f} s', flush=True)
        from nbdev.clean import nbdev_clean
        for q in paths: nbdev_clean(fname=str(q))
    bad = 0
    for q in paths:
        issues = problems(q)
        bad += bool(issues)
        print(f'{q.relative_to(ROOT)}: {q.stat().st_size / 1e3:,.0f} kB' + (f'  PROBLEM: {"; ".join(issues)}' if issues else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
