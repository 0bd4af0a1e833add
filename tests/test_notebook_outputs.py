"""The course notebooks are committed executed and lean, and every exercise key is proved by a solution notebook.

Refresh the outputs after changing a chapter with `.venv/bin/python tools/execute_notebooks.py [notebooks...]`
(see CONTRIBUTING.md). These tests read the notebooks only; they execute nothing.
"""
import ast, json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from execute_notebooks import default_notebooks, skipped, nbdev_test_flags, MAX_BYTES, EMBEDDED_PLOTLY  # noqa: E402

CHAPTERS = default_notebooks()
SOLUTIONS = sorted((ROOT / 'nbs' / 'solutions').glob('*.ipynb'))
FIGURE_MIME = {'image/png', 'image/jpeg', 'image/svg+xml', 'application/vnd.plotly.v1+json'}
_KEY = re.compile(r'^(\d+:)?[0-9a-f]{12}$')            # what answer_key makes
_FIGURE_CALL = re.compile(r'\b(plt|fig)\.show\(')


class Cell(dict):
    "A notebook cell with attribute access, as `skipped` expects."
    __getattr__ = dict.get
    @property
    def source(self): return ''.join(self['source'])


def cells(path: Path) -> list[Cell]:
    return [Cell(c) for c in json.loads(path.read_text())['cells']]


def code(cell: Cell) -> str:
    "A cell's Python source without IPython magics and shell escapes, for the ast module."
    return '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in cell.source.splitlines())


def top_level_figure(cell: Cell) -> bool:
    "Whether the cell itself (not a function it defines) calls plt.show() or fig.show()."
    try: tree = ast.parse(code(cell))
    except SyntaxError: return bool(_FIGURE_CALL.search(cell.source))
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): continue
        if _FIGURE_CALL.search(ast.unparse(stmt)): return True
    return False


def figure_outputs(cell: Cell) -> int:
    return sum(bool(FIGURE_MIME & o.get('data', {}).keys()) for o in cell.get('outputs', []))


def name(p: Path) -> str: return str(p.relative_to(ROOT))


@pytest.mark.parametrize('path', CHAPTERS, ids=name)
def test_figures_are_stored(path):
    "Every cell that draws a figure (and runs by default) has the figure stored; run tools/execute_notebooks.py."
    skip = nbdev_test_flags()
    missing = [k for k, c in enumerate(cells(path)) if not skipped(c, skip) and top_level_figure(c) and not figure_outputs(c)]
    assert not missing, f'{name(path)}: cells {missing} draw a figure but store none: run tools/execute_notebooks.py {name(path)}'


@pytest.mark.parametrize('path', CHAPTERS, ids=name)
def test_outputs_are_lean(path):
    "No notebook over 2 MB, no embedded plotly.js, no stored error."
    size = path.stat().st_size
    assert size <= MAX_BYTES, f'{name(path)} is {size / 1e6:.1f} MB; keep figures small (PNG at ~90 dpi, plotly from its CDN)'
    for k, c in enumerate(cells(path)):
        for o in c.get('outputs', []):
            assert o.get('output_type') != 'error', f'{name(path)}, cell {k}: a stored error output'
            html = ''.join(o.get('data', {}).get('text/html', ''))
            assert not EMBEDDED_PLOTLY.search(html), \
                f'{name(path)}, cell {k}: plotly.js is embedded; use the notebook_connected renderer'


def checks_in(path: Path) -> dict[str, str]:
    "{exercise name: key} of every `check('name', answer, 'key', ...)` call in a notebook."
    out = {}
    for c in cells(path):
        if c['cell_type'] != 'code': continue
        try: tree = ast.parse(code(c))
        except SyntaxError: continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == 'check'): continue
            args = list(node.args) + [kw.value for kw in node.keywords if kw.arg in ('name', 'key')]
            if len(args) >= 3 and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in (args[0], args[2])) \
               and _KEY.match(args[2].value):
                out[args[0].value] = args[2].value
    return out


def test_every_exercise_has_a_solution():
    "Each exercise a chapter checks is solved, with the same key, in a notebook under nbs/solutions/."
    solved = {}
    for p in SOLUTIONS: solved |= checks_in(p)
    for p in CHAPTERS:
        for ex, key in checks_in(p).items():
            assert ex in solved, f'{name(p)}: exercise {ex!r} has no solution in nbs/solutions/'
            assert solved[ex] == key, f'{name(p)}: exercise {ex!r} uses key {key}, its solution {solved[ex]}'


def _calls(path: Path, fn: str):
    "(statement, call) for every call of `fn` in a notebook's code cells; statement is the top-level node holding it."
    for c in cells(path):
        if c['cell_type'] != 'code': continue
        try: tree = ast.parse(code(c))
        except SyntaxError: continue
        for stmt in ast.walk(tree):
            if not isinstance(stmt, ast.stmt): continue
            for node in ast.iter_child_nodes(stmt):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and getattr(call.func, 'id', getattr(call.func, 'attr', None)) == fn:
                        yield stmt, call


def _arg(call: ast.Call, pos: int, kw: str):
    "Argument `pos` of a call, positional or by keyword; None when absent."
    if len(call.args) > pos: return call.args[pos]
    return next((k.value for k in call.keywords if k.arg == kw), None)


def function_exercises_in(path: Path) -> dict[str, str]:
    """{exercise name: reference} of the function exercises a chapter poses: `check_function('name', None, 'ref', ...)`
    shown as the cell's verdict (a statement of its own, not inside an assert or a test)."""
    out = {}
    for stmt, call in _calls(path, 'check_function'):
        name, fn, ref = _arg(call, 0, 'name'), _arg(call, 1, 'fn'), _arg(call, 2, 'reference')
        if isinstance(stmt, ast.Expr) and stmt.value is call and isinstance(name, ast.Constant) and isinstance(fn, ast.Constant) \
           and fn.value is None and isinstance(ref, ast.Constant):
            out[name.value] = ref.value
    return out


def function_solutions_in(path: Path) -> dict[str, str]:
    "{exercise name: reference} of every `assert check_function('name', <a function>, 'ref', ...)` in a notebook."
    out = {}
    for stmt, call in _calls(path, 'check_function'):
        name, fn, ref = _arg(call, 0, 'name'), _arg(call, 1, 'fn'), _arg(call, 2, 'reference')
        if isinstance(stmt, ast.Assert) and stmt.test is call and isinstance(name, ast.Constant) \
           and not (isinstance(fn, ast.Constant) and fn.value is None) and isinstance(ref, ast.Constant):
            out[name.value] = ref.value
    return out


def test_every_function_exercise_has_a_solution():
    "Each `check_function` exercise of a chapter is solved in nbs/solutions/: asserted, with a function, against the same reference."
    solved = {}
    for p in SOLUTIONS: solved |= function_solutions_in(p)
    posed = {ex: (p, ref) for p in CHAPTERS for ex, ref in function_exercises_in(p).items()}
    assert posed, 'no check_function exercise found: the parser no longer sees the chapters\' exercise cells'
    for ex, (p, ref) in posed.items():
        assert ex in solved, f'{name(p)}: exercise {ex!r} (check_function) has no solution in nbs/solutions/'
        assert solved[ex] == ref, f'{name(p)}: exercise {ex!r} checks against {ref}, its solution against {solved[ex]}'


def test_solutions_assert_their_checks():
    "A solution notebook asserts every check and check_function it makes, so nbdev-test fails when one is wrong."
    for p in SOLUTIONS:
        for k, c in enumerate(cells(p)):
            if c['cell_type'] != 'code': continue
            for node in ast.walk(ast.parse(code(c))):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                   getattr(node.value.func, 'id', None) in ('check', 'check_function'):
                    pytest.fail(f'{name(p)}, cell {k}: `{node.value.func.id}(...)` without `assert`')


def test_execute_tool_skips_what_nbdev_test_skips():
    "The execution tool leaves out markdown, `#| eval: false` and flagged cells (unless the flag is forced)."
    def cell(src, kind='code'): return Cell(cell_type=kind, source=src)
    flags = nbdev_test_flags()
    assert 'slow' in flags
    assert skipped(cell('#| slow\nx = 1'), flags) and not skipped(cell('#| slow\nx = 1'), flags - {'slow'})
    assert skipped(cell('#|eval: false\nx = 1'), set()) and skipped(cell('# Title', 'markdown'), set())
    assert not skipped(cell('#| export\ndef f(): pass'), flags) and not skipped(cell('x = 1  # slow'), flags)
