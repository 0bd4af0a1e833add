"""Command-line checks that notebooks test badly: the installed console script in a fresh process, the tour end to end,
JupyterLab started and stopped, and the course notebooks inside a built wheel."""
import json, os, re, shutil, signal, socket, subprocess, sys, textwrap, time, urllib.request, zipfile, zlib
from pathlib import Path
import pytest
import torch
import leech_explorer

# the console script installed next to this interpreter (the venv need not be activated)
SCRIPT = Path(sys.executable).parent / 'leech-explorer'
if not SCRIPT.exists(): SCRIPT = Path(shutil.which('leech-explorer') or 'leech-explorer')
REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ['tour', 'bench', 'train-tokenizer', 'eval-tokenizer', 'train-generator', 'sample', 'lab', 'site']


def run(*args, timeout=600, **kw):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, **kw)


def test_help_lists_subcommands():
    r = run('--help')
    assert r.returncode == 0
    for cmd in SUBCOMMANDS: assert re.search(rf'^\s+{cmd}\s', r.stdout, re.M), f'{cmd} missing from --help'


@pytest.mark.parametrize('cmd', SUBCOMMANDS)
def test_subcommand_help(cmd):
    r = run(cmd, '--help')
    assert r.returncode == 0 and r.stdout.startswith(f'usage: leech-explorer {cmd}')
    assert re.search(r'^\s+--\w', r.stdout, re.M), r.stdout                  # an option of its own, besides -h/--help


def test_version():
    r = run('--version')
    assert r.returncode == 0 and leech_explorer.__version__ in r.stdout


@pytest.mark.parametrize('args, message', [
    (['nope'], 'invalid choice'),
    (['bench', '--n', '0'], 'positive integer'),
    (['bench', '--n', '99999999999'], 'positive integer of at most 67,108,864'),
    (['bench', '--baseline-max', '-3'], 'positive integer'),
    (['bench', '--tokens', '0'], 'positive integer'),
    (['bench', '--what', 'everything'], 'invalid choice'),
    (['bench', '--threads', '0'], 'positive integer'),
    (['bench', '--batch', '99999'], 'positive integer of at most 1,024'),
    (['bench', '--frobnicate'], 'unrecognized argument --frobnicate; the options are --baseline-max, --batch, --device'),
    (['bench', '--json', '{tmp}/file/bench.json'], '{tmp}/file is a file, so no file can be made inside it'),
    (['bench', '--json', '/proc/nope/bench.json'], 'nothing can be written in /proc'),
    (['lab', '--port', '0'], 'positive integer'),
    (['lab', '--port', '70000'], 'positive integer of at most 65,535'),
    (['lab', '--dir', '{tmp}/file'], 'is a file, not a folder'),
    (['tour', '--device', 'tpu'], 'invalid choice'),
    (['tour', '--seed', 'one'], 'expected an integer >= 0'),
    (['tour', '--qiuck'], 'unrecognized argument --qiuck; did you mean --quick?'),
    (['tour', '--quick', '--out', '/proc/nope'], 'nothing can be written in /proc'),
    (['tour', '--quick', '--out', '{tmp}/file/report'], 'is a file, so no folder can be made inside it'),
    (['site', '--src', '/no/such/folder'], 'does not exist'),
    (['site', '--out', '{tmp}/file'], 'is a file, not a folder'),
    (['train-tokenizer', '--dataset', 'cifar10'], 'invalid choice'),
    (['train-tokenizer', '--steps', '-1'], 'positive integer'),
    (['train-tokenizer', '--dataset', 'folder', '--root', '/no/such/images'], 'does not exist'),
    (['train-tokenizer', '--dataset', 'folder', '--out', '{tmp}/new'], 'needs --root'),
    (['train-tokenizer', '--out', '{tmp}/file'], 'is a file, not a folder'),
    (['eval-tokenizer', '--tokenizer', '/no/such/tokenizer'], 'does not exist'),
    (['eval-tokenizer', '--tokenizer', '{tmp}/empty'], 'has no config.json and no model.safetensors'),
    (['eval-tokenizer', '--n', '0'], 'positive integer'),
    (['eval-tokenizer', '--checkpoint', 'runs/x'], 'unrecognized argument --checkpoint; did you mean --tokenizer?'),
    (['eval-tokenizer', '--json', '{tmp}/empty'], 'is a folder, not a file'),
    (['train-generator', '--tokenizer', '/no/such/tokenizer'], 'does not exist'),
    (['train-generator', '--optimizer', 'sgd'], 'invalid choice'),
    (['train-generator', '--out', '{tmp}/file'], 'is a file, not a folder'),
    (['train-generator', '--ckpt-every', '-5'], 'expected an integer >= 0'),
    (['train-tokenizer', '--out', '{tmp}/new', '--allow-changes', 'lr'], '--allow-changes applies only with --resume'),
    (['sample', '--generator', '/no/such/generator'], 'does not exist'),
    (['sample', '--generator', '{tmp}/half'], 'has no model.safetensors'),
    (['sample', '--n-per-label', '0'], 'positive integer'),
    (['sample', '--n-per-label', '10000000'], 'positive integer of at most 100,'),
    (['sample', '--labels', '3', '10'], "--labels 10: this generator's classes are 0 to 9"),
    (['sample', '--top-k', '5'], "'shell' head samples the shell exactly"),
    (['sample', '--top-p', '-0.5'], 'a number in (0, 1]'),
    (['sample', '--cfg-scale', '-1'], 'a number >= 0'),
    (['sample', '--out', '/proc/nope/x.png'], 'nothing can be written in /proc'),
    (['sample', '--out', '{tmp}/empty'], 'is a folder, not a file'),
    (['site', '--notebooks', 'no_such_chapter.ipynb', '--out', '{tmp}/site'], 'no such notebook'),
])
def test_bad_arguments_one_line(tmp_path, args, message):
    "Refused in one line, exit status 2, in well under the time any work takes, and nothing left behind."
    (tmp_path / 'file').write_text('x'); (tmp_path / 'empty').mkdir(); (tmp_path / 'half').mkdir()
    (tmp_path / 'half' / 'config.json').write_text('{}')
    before = sorted(tmp_path.rglob('*'))
    t = time.perf_counter()
    r = run(*[a.format(tmp=tmp_path) for a in args], cwd=tmp_path)                # defaults would land in tmp_path
    seconds = time.perf_counter() - t
    assert r.returncode == 2 and message.format(tmp=tmp_path) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr          # one line, no usage dump, no traceback
    assert r.stderr.startswith(f'leech-explorer {args[0]}: error: ' if args[0] != 'nope' else 'leech-explorer: error: ')
    assert sorted(tmp_path.rglob('*')) == before                       # no folder made, no probe left
    assert seconds < 10, f'{seconds:.1f} s to refuse a bad argument'


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message for a machine without CUDA')
@pytest.mark.parametrize('args', [['tour', '--device', 'cuda'], ['bench', '--device', 'cuda', '--n', '8']])
def test_cuda_without_cuda(tmp_path, args):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2 and 'no CUDA device' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'leech_explorer_report').exists()


def test_bench_small(tmp_path):
    out = tmp_path / 'bench.json'
    r = run('bench', '--what', 'search', '--n', '4096', '--device', 'cpu', '--baseline-max', '1024', '--json', str(out))
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text()); rows = rec['rows']
    assert rec['environment']['torch'] == torch.__version__ and rec['environment']['logical_cpus'] == os.cpu_count()
    assert {row['method']: row['n'] for row in rows} == {'numba': 4096, 'bruteforce': 1024}   # --baseline-max honoured
    for row in rows: assert abs(row['vectors_per_s'] * row['seconds'] - row['n']) < 1e-6 * row['n'], row
    brute = next(row for row in rows if row['method'] == 'bruteforce')
    for row in rows: assert abs(row['speedup'] - row['vectors_per_s'] / brute['vectors_per_s']) < 1e-9 * row['speedup'], row
    assert 'x brute' in r.stdout and 'output heads' not in r.stdout


def test_bench_heads():
    r = run('bench', '--what', 'heads', '--head-dims', '16', '--tokens', '8', '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert 'output heads' in r.stdout and 'full / this' in r.stdout and 'x brute' not in r.stdout
    rows = [l.split() for l in r.stdout.splitlines() if re.match(r'\s+16\s+(full|shell|vmf)\s', l)]
    assert {row[1] for row in rows} == {'full', 'shell', 'vmf'}


def test_bench_every_part(tmp_path):
    """The default --what times every part on one thread; --json records each part's rows beside the search's."""
    out = tmp_path / 'bench.json'
    r = run('bench', '--n', '2048', '--baseline-max', '512', '--head-dims', '16', '--tokens', '8', '--batch', '2',
            '--device', 'cpu', '--json', str(out))
    assert r.returncode == 0, r.stderr
    assert '== cpu, 1 thread' in r.stdout
    for title in ('x brute', 'output heads', "the full head's loss: chunked vs naive logits", 'a tokenizer training step'):
        assert title in r.stdout, title
    rec = json.loads(out.read_text())
    assert set(rec) == {'environment', 'rows', 'heads', 'ce', 'tokenizer'}
    assert {row['threads'] for row in rec['rows']} == {1}
    assert {row['head'] for row in rec['heads']} >= {'full', 'shell', 'vmf'} and {row['d'] for row in rec['heads']} == {16}
    ce = {row['variant']: row for row in rec['ce']}
    assert ce['naive logits']['ratio'] == 1.0 and all(row['grad_h_rel'] < 1e-4 for row in ce.values()), ce
    tok = {row['variant']: row for row in rec['tokenizer']}
    assert set(tok) == {'Λ24-SQ', 'BSQ-18'} and tok['BSQ-18']['ratio'] == 1.0 and tok['Λ24-SQ']['batch'] == 2
    assert abs(tok['Λ24-SQ']['ratio'] - tok['Λ24-SQ']['step_ms'] / tok['BSQ-18']['step_ms']) < 1e-9


def test_tour_quick(tmp_path):
    """The README's main command, small: every step's checks pass, the report is one self-contained file; run twice with a
    fresh cache folder, the second run takes the digit judge from the cache and scores the same."""
    env = dict(os.environ, LEECH_EXPLORER_CACHE=str(tmp_path / 'cache'))
    runs = {}
    for kind in ('cold', 'warm'):
        out = tmp_path / kind
        t = time.perf_counter()
        r = run('tour', '--quick', '--seed', '1', '--out', str(out), env=env)
        print(f'tour --quick, {kind} cache: {time.perf_counter() - t:.1f} s (load average {os.getloadavg()[0]:.2f})')
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        runs[kind] = m = json.loads((out / 'metrics.json').read_text())
        assert m['ok'] and m['mode'] == 'quick' and m['seed'] == 1 and m['device'] == 'cpu'
        assert list(m['steps']) == ['lattice', 'geometry', 'quantizer', 'tokenizer', 'generator']
        assert all(s['ok'] and s['checks'] and all(s['checks'].values()) for s in m['steps'].values())
        page = (out / 'report.html').read_text()
        assert page.count('<figure>') == 4 and page.count('data:image/png;base64,') == 4
        assert not re.search(r'(src|href)=["\']https?://', page)              # nothing to fetch to view it
        assert 'all checks passed' in r.stdout and 'speed-up' in r.stdout      # the terminal's summary table
    m = runs['cold']
    assert m['steps']['lattice']['shell_size'] == 196560 and m['steps']['lattice']['neighbours_at_min'] == 4600
    g = m['steps']['geometry']
    assert g['Λ24 shell']['mse_over_bound'] < g['BSQ-18']['mse_over_bound']
    q = m['steps']['quantizer']
    assert q['exact_agree'] == q['exact_inputs'] and q['speedup'] > 1
    t = m['steps']['tokenizer']
    assert t['images'] == 100 and t['tokens_per_image'] == 49 and t['psnr'] > t['mean_digit_psnr'] and 0 < t['ssim'] <= 1
    s = m['steps']['generator']
    assert s['samples'] == 50 and s['classifier_score'] > 3 * s['chance'] and s['real_test_accuracy'] > 0.9
    shipped = json.loads((Path(leech_explorer.__file__).parent / 'pretrained' / 'mnist-tiny-generator' / 'config.json').read_text())
    assert s['sampling']['cfg_scale'] == shipped['sample_cfg_scale']       # the generator's recommendation, not 1.0
    cold, warm = runs['cold']['steps']['generator'], runs['warm']['steps']['generator']
    assert not cold['judge_from_cache'] and warm['judge_from_cache']
    assert len(list((tmp_path / 'cache').rglob('*.safetensors'))) == 1
    assert (warm['classifier_score'], warm['real_test_accuracy']) == (cold['classifier_score'], cold['real_test_accuracy'])


@pytest.fixture(scope='module')
def small_tokenizer(tmp_path_factory):
    "A tokenizer trained for 2 steps on sklearn's 8x8 digits (2x2 tokens per image): enough to test the plumbing."
    out = tmp_path_factory.mktemp('tokenizer') / 'tok'
    r = run('train-tokenizer', '--dataset', 'digits', '--steps', '2', '--out', str(out), '--seed', '3', '--ckpt-every', '1')
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r.stdout


def test_train_tokenizer(small_tokenizer):
    out, stdout = small_tokenizer
    assert (out / 'config.json').is_file() and (out / 'model.safetensors').is_file() and 'test PSNR' in stdout
    assert json.loads((out / 'metrics.json').read_text())['steps'] == 2
    from leech_explorer.train import checkpoint_metadata
    assert json.loads(checkpoint_metadata(out / 'last.safetensors')['config'])['ckpt_every'] == 1   # --ckpt-every reached train


def test_eval_tokenizer(small_tokenizer, tmp_path):
    res = tmp_path / 'eval.json'
    r = run('eval-tokenizer', '--tokenizer', str(small_tokenizer[0]), '--dataset', 'digits', '--n', '40', '--json', str(res))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(res.read_text())
    assert m['images'] == 40 and m['code_tokens'] == 40 * 4 and 'psnr' in r.stdout
    from leech_explorer.tokenizer import Tokenizer, evaluate_tokenizer       # the command reports what the library computes
    from leech_explorer.data import load_images
    here = evaluate_tokenizer(Tokenizer.from_pretrained(small_tokenizer[0]), load_images('digits', 'test'), n=40,
                              fid_images=0, progress=False)
    assert abs(m['psnr'] - here['psnr']) < 1e-4 and abs(m['ssim'] - here['ssim']) < 1e-4, (m, here)



def test_eval_multiscale_tokenizer(tmp_path):
    "The shipped multi-scale tokenizer by name: 88 tokens per digit (scales 1, 2, 3, 5, 7), the PSNR the library computes."
    res = tmp_path / 'eval.json'
    r = run('eval-tokenizer', '--tokenizer', 'mnist-tiny-ms', '--n', '20', '--fid-images', '0', '--json', str(res))
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads(res.read_text())
    assert m['images'] == 20 and m['code_tokens'] == 20 * 88, m
    from leech_explorer.tokenizer import Tokenizer, evaluate_tokenizer
    from leech_explorer.data import load_images
    here = evaluate_tokenizer(Tokenizer.from_pretrained('mnist-tiny-ms'), load_images('mnist', 'test'), n=20, fid_images=0)
    assert abs(m['psnr'] - here['psnr']) < 1e-4, (m, here)

def test_train_generator_and_sample(small_tokenizer, tmp_path):
    tok = str(small_tokenizer[0])
    r = run('train-generator', '--tokenizer', tok, '--dataset', 'digits', '--steps', '2', '--out', str(tmp_path / 'run'),
            '--ckpt-every', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    from leech_explorer.train import checkpoint_metadata
    assert json.loads(checkpoint_metadata(tmp_path / 'run' / 'last.safetensors')['config'])['ckpt_every'] == 0
    gen = tmp_path / 'run' / 'generator'
    assert (gen / 'config.json').is_file() and (gen / 'model.safetensors').is_file()
    png = tmp_path / 'grid.png'
    r = run('sample', '--generator', str(gen), '--tokenizer', tok, '--labels', '0', '7', '--n-per-label', '3', '--out', str(png))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'cfg_scale 2.0 (recommended)' in r.stdout, r.stdout                # train-generator's config recommends 2.0
    width, height, pixels = read_gray_png(png)
    tile = 8 * 4 + 2                                                          # 8x8 digits drawn 4x, and the padding
    assert height == 2 * tile + 2 and width > 3 * tile + 2                    # 2 rows of 3, and a label column
    labels = width - (3 * tile + 2)
    for row in range(2):                                                      # each row's label: dark ink on white
        band = pixels[2 + row * tile:2 + row * tile + tile - 2]
        assert min(min(line[:labels]) for line in band) < 64 and max(max(line[:labels]) for line in band) > 192
    r = run('sample', '--generator', str(gen), '--tokenizer', tok, '--labels', '1', '--n-per-label', '1', '--cfg-scale', '1.5',
            '--out', str(png))
    assert r.returncode == 0 and 'cfg_scale 1.5,' in r.stdout and 'temperature 1.0 (recommended)' in r.stdout, r.stdout
    r = run('sample', '--generator', str(gen), '--tokenizer', tok, '--labels', '12', '--out', str(png))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_next_scale_generator_by_name(tmp_path):
    "sample --generator mnist-tiny-ns: the shipped next-scale model, its own tokenizer found from its config, the same pixels as the library."
    png = tmp_path / 'ns.png'
    r = run('sample', '--generator', 'mnist-tiny-ns', '--labels', '3', '8', '--n-per-label', '2', '--seed', '5', '--out', str(png))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'cfg_scale 2.0 (recommended)' in r.stdout, r.stdout
    from leech_explorer.generator_train import sample_grid
    here = sample_grid('mnist-tiny-ns', labels=[3, 8], n_per_label=2, seed=5, out=tmp_path / 'here.png')
    assert png.read_bytes() == here.read_bytes()
    r = run('sample', '--generator', 'mnist-tiny-ns', '--tokenizer', 'mnist-tiny', '--labels', '1', '--out', str(png))
    assert r.returncode == 2 and 'trained on the tokens of tokenizer' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_train_next_scale_generator(tmp_path):
    "train-generator --kind next-scale on the shipped multi-scale tokenizer (2 steps), then sample from what it wrote."
    r = run('train-generator', '--kind', 'next-scale', '--steps', '2', '--out', str(tmp_path / 'run'), '--ckpt-every', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    gen = tmp_path / 'run' / 'generator'
    cfg = json.loads((gen / 'config.json').read_text())
    assert (cfg['kind'], cfg['scales'], cfg['tokenizer']) == ('next-scale', [1, 2, 3, 5, 7], 'mnist-tiny-ms'), cfg
    assert f'--tokenizer mnist-tiny-ms' in r.stdout, r.stdout
    r = run('sample', '--generator', str(gen), '--labels', '4', '--n-per-label', '1', '--out', str(tmp_path / 's.png'))
    assert r.returncode == 0, r.stderr[-2000:]


def test_killed_training_resumes(tmp_path, kill_when_file_appears):
    """`train-tokenizer` killed (SIGKILL) mid-run leaves an automatic checkpoint (every 5% of the run, so every 5 of 100
    steps); `--resume` finishes the run, and the result loads."""
    from leech_explorer.train import checkpoint_metadata
    from leech_explorer.tokenizer import Tokenizer
    out = tmp_path / 'tok'
    args = ['train-tokenizer', '--dataset', 'digits', '--steps', '100', '--out', str(out)]
    ckpt = out / 'last.safetensors'
    appeared, output, seconds = kill_when_file_appears([SCRIPT, *args], ckpt, timeout=180)
    assert appeared, f'no checkpoint after {seconds:.0f} s: ' + output[-2000:]
    step = int(checkpoint_metadata(ckpt)['step'])                    # complete and readable, however it was killed
    assert 5 <= step < 100 and step % 5 == 0, step
    r = run(*args, '--resume')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'after 100 steps' in r.stdout, r.stdout
    assert json.loads((out / 'metrics.json').read_text())['steps'] == 100
    Tokenizer.from_pretrained(out)


def read_gray_png(path) -> tuple[int, int, list]:
    "Width, height and rows of pixel values of an 8-bit grayscale PNG as write_png writes it (one IDAT, filter 0)."
    data = Path(path).read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[25] == 0                 # grayscale
    width, height = int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    at = data.index(b'IDAT'); size = int.from_bytes(data[at - 4:at], 'big')
    raw = zlib.decompress(data[at + 4:at + 4 + size])
    rows = [raw[k * (width + 1) + 1:(k + 1) * (width + 1)] for k in range(height)]
    assert all(raw[k * (width + 1)] == 0 for k in range(height))
    return width, height, [list(row) for row in rows]


def test_lab_dry_run_keeps_edits(tmp_path):
    course = tmp_path / 'course'
    r = run('lab', '--dir', str(course), '--dry-run')
    assert r.returncode == 0, r.stderr
    assert 'jupyterlab' in r.stdout and (course / 'nbs' / 'index.ipynb').is_file()
    (course / 'nbs' / 'index.ipynb').write_text('{}')                      # the student's edit
    r = run('lab', '--dir', str(course), '--dry-run')
    assert r.returncode == 0 and '0 files copied' in r.stdout
    assert (course / 'nbs' / 'index.ipynb').read_text() == '{}'


def fake_clone(folder: Path, title: str) -> Path:
    "A clone of the course with one notebook: nbs/index.ipynb titled `title`, and a pyproject.toml naming leech_explorer."
    (folder / 'nbs').mkdir(parents=True)
    (folder / 'pyproject.toml').write_text('[project]\nname = "leech_explorer"\n')
    nb = dict(cells=[dict(cell_type='markdown', id='a1', metadata={}, source=[f'# {title}\n', 'Some math: $x^2$.'])],
              metadata={}, nbformat=4, nbformat_minor=5)
    (folder / 'nbs' / 'index.ipynb').write_text(json.dumps(nb))
    return folder


def test_site_reads_the_clone_you_are_in(tmp_path):
    "Inside another clone, `site` renders that clone's notebooks and says so; outside any, the installed course."
    from leech_explorer.website import course_root
    clone = fake_clone(tmp_path / 'clone', 'A front page of another clone')
    mathjax = tmp_path / 'tex-svg-full.js'; mathjax.write_text('window.MathJaxStandIn = true;')
    r = run('site', '--out', str(tmp_path / 'site'), '--mathjax', str(mathjax), cwd=clone / 'nbs')
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'reading the notebooks in {clone / "nbs"}\n' in r.stdout
    assert 'A front page of another clone' in (tmp_path / 'site' / 'index.html').read_text()
    r = run('site', '--out', str(tmp_path / 'site2'), '--mathjax', str(mathjax), '--nbs', str(clone / 'nbs'), cwd=tmp_path)
    assert r.returncode == 0 and f'reading the notebooks in {clone / "nbs"}\n' in r.stdout, r.stdout + r.stderr[-2000:]
    r = run('site', '--out', str(tmp_path / 'site3'), '--mathjax', str(mathjax), '--notebooks', 'index.ipynb', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'reading the notebooks in {(course_root() / "nbs").resolve()}\n' in r.stdout


def test_site_says_when_it_fetches_mathjax(tmp_path):
    "With no MathJax in the cache, `site` says in one line that it fetches it (here from a stand-in npm), and only once."
    clone = fake_clone(tmp_path / 'clone', 'Front')
    bin_dir = tmp_path / 'bin'; bin_dir.mkdir()
    npm = bin_dir / 'npm'                                                     # `npm pack mathjax@3.2.2`, offline
    npm.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import io, sys, tarfile
        assert sys.argv[1:3] == ['pack', 'mathjax@3.2.2'], sys.argv
        with tarfile.open('mathjax-3.2.2.tgz', 'w:gz') as t:
            for name, text in (('package/es5/tex-svg-full.js', b'window.MathJaxStandIn = 1;'), ('package/LICENSE', b'Apache-2.0')):
                info = tarfile.TarInfo(name); info.size = len(text); t.addfile(info, io.BytesIO(text))
        """))
    npm.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'LEECH_MATHJAX'}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", XDG_CACHE_HOME=str(tmp_path / 'cache'))
    lines = []
    for k in range(2):
        r = run('site', '--out', str(tmp_path / f'site{k}'), cwd=clone, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        lines.append([l for l in r.stdout.splitlines() if 'MathJax' in l])
    assert len(lines[0]) == 1 and lines[0][0].startswith('fetching MathJax (mathjax@3.2.2, once) with npm into ')
    assert lines[1] == []                                                     # the second build uses the cached copy
    assert (tmp_path / 'site1' / 'assets' / 'mathjax' / 'tex-svg-full.js').read_text() == 'window.MathJaxStandIn = 1;'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_lab_starts_and_stops(tmp_path):
    "JupyterLab really starts on the working copy and serves the front page; then we stop it."
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / 'cfg'), JUPYTER_RUNTIME_DIR=str(tmp_path / 'rt'))
    p = subprocess.Popen([str(SCRIPT), 'lab', '--dir', str(tmp_path / 'course'), '--no-browser', '--port', str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        url = None
        for _ in range(240):                                                # up to 120 s on a busy machine
            time.sleep(0.5)
            assert p.poll() is None, p.stdout.read()
            try: url = urllib.request.urlopen(f'http://127.0.0.1:{port}/api', timeout=5).read()
            except OSError: continue
            break
        assert url and b'version' in url, 'JupyterLab did not answer'
    finally:                                                            # stop the server and anything it started
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert (tmp_path / 'course' / 'nbs' / '00_golay.ipynb').is_file()


def test_wheel_ships_the_course(tmp_path):
    "A wheel built from this checkout carries the notebooks; installed from it (no clone), lab finds them."
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', str(REPO),
                        '-w', str(tmp_path / 'dist')], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and 'No module named' in r.stderr: pytest.skip(f'cannot build a wheel here: {r.stderr[-200:]}')
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((tmp_path / 'dist').glob('leech_explorer-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split('/')[-1] for n in names if n.startswith('leech_explorer/course_files/nbs/')}
    assert shipped >= {p.name for p in (REPO / 'nbs').glob('*.ipynb')}
    site = tmp_path / 'installed'
    zipfile.ZipFile(wheel).extractall(site)                              # what pip would put in site-packages
    code = ("import sys; from leech_explorer.website import course_root; from leech_explorer.cli import main; "
            "print(course_root()); sys.exit(main(['lab', '--dir', sys.argv[1], '--dry-run']))")
    r = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'course')], capture_output=True, text=True,
                       cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert str(site / 'leech_explorer' / 'course_files') in r.stdout
    assert (tmp_path / 'course' / 'nbs' / 'index.ipynb').is_file() and (tmp_path / 'course' / 'benchmarks').is_dir()
