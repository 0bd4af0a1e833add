"""A slim install: `pip install leech_explorer` with no extras brings the library alone, without the course's packages.

Slow (it makes a virtual environment and installs torch into it), so it runs only when LEECH_SLIM_CHECK=1.
LEECH_SLIM_TORCH says what to install for torch first: by default `torch`, which on Linux resolves to the CUDA build
(several GB); a CPU wheel keeps the environment near 1 GB, e.g. LEECH_SLIM_TORCH=/path/to/torch-...+cpu-....whl.
"""
import os, subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE_ONLY = ['matplotlib', 'plotly', 'ipywidgets', 'lpips', 'torchvision', 'jupyterlab', 'fastcore', 'scipy', 'nbdev']

CHECK = textwrap.dedent(f'''
    import importlib, importlib.util, pkgutil, sys
    missing = [m for m in {COURSE_ONLY!r} if importlib.util.find_spec(m) is None]
    assert missing == {COURSE_ONLY!r}, f"course-only packages installed: {{set({COURSE_ONLY!r}) - set(missing)}}"
    import torch, leech_explorer
    for m in pkgutil.iter_modules(leech_explorer.__path__):          # every module imports without them
        importlib.import_module('leech_explorer.' + m.name)
    from leech_explorer.quantizer import LeechQuantizer
    out = LeechQuantizer(dim=32)(torch.randn(2, 32, 3, 3))
    assert out.indices.shape == (2, 3, 3) and out.quantized.shape == (2, 32, 3, 3)
    print('slim ok', torch.__version__)
''')

@pytest.mark.skipif(os.environ.get('LEECH_SLIM_CHECK') != '1', reason='slow: set LEECH_SLIM_CHECK=1 to run')
def test_slim_install(tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    py = str(venv / 'bin' / 'python')
    pip = [py, '-m', 'pip', 'install', '-q']
    subprocess.run(pip + [os.environ.get('LEECH_SLIM_TORCH', 'torch')], check=True)
    subprocess.run(pip + [str(ROOT)], check=True)
    r = subprocess.run([py, '-c', CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and 'slim ok' in r.stdout, r.stderr[-3000:]
    size = subprocess.run(['du', '-sh', str(venv)], capture_output=True, text=True).stdout.split()[0]
    print(f'slim environment: {size}')
