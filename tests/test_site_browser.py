"""The course site in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) opens
every page of a built site with the network cut off and checks what the site's manifest (site.json) promises: math
typeset by MathJax without errors, every image loaded, every plotly figure drawn, working navigation, nothing loaded
from outside the site, and no JavaScript errors in the console.

Run it with `tools/browser_test.sh` (installs Chromium if missing, builds the site, runs this file); by hand:
`LEECH_SITE=build/site pytest -q tests/test_site_browser.py`. Without LEECH_SITE the tests are skipped."""
import functools, http.server, json, os, shutil, tempfile, threading
from pathlib import Path
import pytest

SITE = Path(os.environ['LEECH_SITE']).resolve() if os.environ.get('LEECH_SITE') else None
pytestmark = pytest.mark.skipif(SITE is None, reason='set LEECH_SITE to a built site (tools/browser_test.sh does)')
PAGES = json.loads((SITE / 'site.json').read_text())['pages'] if SITE else []

CHROME_FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
                '--window-size=1280,900',
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']   # no name resolves: no network


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def origin():
    "Serve the site on a free localhost port for the module's tests."
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True); thread.start()
    yield f'http://127.0.0.1:{server.server_port}'
    server.shutdown(); server.server_close()


@pytest.fixture(scope='module')
def browser():
    from selenium import webdriver
    chromium, driver = shutil.which('chromium'), shutil.which('chromedriver')
    if not (chromium and driver):
        pytest.fail("Chromium is not installed: apt-get install -y chromium chromium-driver (tools/browser_test.sh does)")
    profile = tempfile.mkdtemp(prefix='leech-chromium-')
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROME_FLAGS + [f'--user-data-dir={profile}']: opts.add_argument(flag)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver))
    d.set_script_timeout(120); d.set_page_load_timeout(120)
    yield d
    d.quit(); shutil.rmtree(profile, ignore_errors=True)


# Runs once the page has loaded, after MathJax has worked through its queue (the typesetting queued at load time).
_SETTLE = """
const done = arguments[arguments.length - 1];
const finish = () => setTimeout(() => done(true), 300);
if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(finish, finish); else finish();
"""

_INSPECT = """
const imgs = [...document.querySelectorAll('img')];
const figs = [...document.querySelectorAll('.plotly-graph-div')];
return {
  mathjax: !!(window.MathJax && MathJax.startup && MathJax.startup.document),
  math_rendered: document.querySelectorAll('mjx-container svg').length,
  math_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
  raw_tex: [...document.querySelectorAll('.jp-RenderedMarkdown')].filter(e => {      // display math left as text
    const c = e.cloneNode(true); c.querySelectorAll('code, pre, mjx-container').forEach(x => x.remove());
    return /\\$\\$[^$]+\\$\\$/.test(c.textContent); }).length,
  images: imgs.length,
  broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60)),
  plotly: figs.length,
  plotly_drawn: figs.filter(f => f._fullLayout && f.querySelector('.main-svg')).length,
  nav: [...document.querySelectorAll('nav.le-nav a, nav.le-pager a')].map(a => a.getAttribute('href')),
  resources: performance.getEntriesByType('resource').map(r => r.name),
};
"""


def test_manifest_lists_pages():
    assert PAGES and PAGES[0]['file'] == 'index.html'
    assert all((SITE / p['file']).is_file() for p in PAGES)


@pytest.mark.parametrize('page', PAGES, ids=[p['file'] for p in PAGES])
def test_page_renders(browser, origin, page):
    browser.get(f"{origin}/{page['file']}")
    browser.execute_async_script(_SETTLE)
    got = browser.execute_script(_INSPECT)
    errors = [e['message'] for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, f"JavaScript errors on {page['file']}: {errors[:3]}"
    outside = [r for r in got['resources'] if not r.startswith((origin, 'data:', 'blob:'))]
    assert not outside, f"{page['file']} loaded from outside the site: {outside[:3]}"
    assert got['mathjax'], 'MathJax did not load'
    assert got['math_rendered'] >= page['math'], f"math typeset: {got['math_rendered']} formulas, {page['math']} in the notebook"
    assert got['math_errors'] == 0 and got['raw_tex'] == 0
    assert got['images'] == page['images'] and not got['broken_images'], got['broken_images']
    assert got['plotly'] == page['plotly'] and got['plotly_drawn'] == page['plotly'], \
        f"plotly figures drawn: {got['plotly_drawn']} of {page['plotly']}"
    files = {p['file'] for p in PAGES}
    assert len(got['nav']) >= len(PAGES) and set(got['nav']) <= files, got['nav']
