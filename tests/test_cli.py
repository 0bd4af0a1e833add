"Command-line checks that notebooks test badly: the installed console script in a fresh process."
import json, shutil, subprocess, sys
from pathlib import Path
import leech_explorer

# the console script installed next to this interpreter (the venv need not be activated)
SCRIPT = Path(sys.executable).parent / 'leech-explorer'
if not SCRIPT.exists(): SCRIPT = Path(shutil.which('leech-explorer') or 'leech-explorer')

def run(*args):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True)

def test_help():
    r = run('--help')
    assert r.returncode == 0 and 'bench' in r.stdout

def test_version():
    r = run('--version')
    assert r.returncode == 0 and leech_explorer.__version__ in r.stdout

def test_bench_small(tmp_path):
    out = tmp_path / 'bench.json'
    r = run('bench', '--n', '4096', '--device', 'cpu', '--baseline-max', '1024', '--json', str(out))
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text()); rows = rec['rows']
    assert rec['environment']['torch'] and rec['environment']['logical_cpus'] >= 1
    assert {row['method'] for row in rows} == {'numba', 'bruteforce'}
    assert all(row['vectors_per_s'] > 0 for row in rows)
    assert 'x brute' in r.stdout

def test_bad_subcommand():
    r = run('nope')
    assert r.returncode != 0 and 'invalid choice' in r.stderr
