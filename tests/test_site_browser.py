"""The course site in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) opens
every page of a built site with the network cut off, three ways -- served at the root of a web server, served under a
sub-path, and as a file (file://) -- and checks what the site's manifest (site.json) promises: math typeset by MathJax
without errors (inline and displayed), every image loaded, every plotly figure drawn, links and navigation that lead
to pages of the site, the chapter's title in the browser tab, distinct labels in the side bar, no prompts, a note on
each slow cell without output, code blocks with a background, nothing loaded from outside the site, no JavaScript
errors in the console, (as a file) no page wider than a 390-pixel phone screen, and a note on each ipywidgets control
with the snapshot figure its cell stored. Over the chapters 05 to 08 it also asks for at least four pages with a plotly
figure whose slider moves through frames: it counts what the built pages have and names them.

Run it with `tools/browser_test.sh` (installs Chromium if missing, builds the site, runs this file); by hand:
`LEECH_SITE=build/site pytest -q tests/test_site_browser.py`. Without LEECH_SITE the tests are skipped."""
import functools, http.server, itertools, json, os, shutil, tempfile, threading, urllib.parse
from pathlib import Path
import pytest

SITE = Path(os.environ['LEECH_SITE']).resolve() if os.environ.get('LEECH_SITE') else None
pytestmark = pytest.mark.skipif(SITE is None, reason='set LEECH_SITE to a built site (tools/browser_test.sh does)')
MANIFEST = json.loads((SITE / 'site.json').read_text()) if SITE else {}
PAGES = MANIFEST.get('pages', [])
LISTED = [p for p in PAGES if p['kind'] != 'solutions']      # the pages the side bar lists, in reading order
WAYS = ('root', 'subpath', 'file')                           # how the site is opened
SUBPATH = 'courses/leech/site'                               # where the site sits on the second server
PHONE = 390                                                  # CSS pixels: a phone's screen width

CHROME_FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
                '--window-size=1280,900',
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1']   # no name resolves: no network


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def _serve(folder: Path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope='module')
def bases():
    "The site's address for each way of opening it: a server at its root, a server with it under SUBPATH, and file://."
    outer = Path(tempfile.mkdtemp(prefix='leech-site-'))
    (outer / SUBPATH).parent.mkdir(parents=True)
    (outer / SUBPATH).symlink_to(SITE, target_is_directory=True)
    root, sub = _serve(SITE), _serve(outer)
    yield {'root': f'http://127.0.0.1:{root.server_port}/', 'subpath': f'http://127.0.0.1:{sub.server_port}/{SUBPATH}/',
           'file': SITE.as_uri() + '/'}
    for s in (root, sub): s.shutdown(); s.server_close()
    shutil.rmtree(outer, ignore_errors=True)


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
const math = [...document.querySelectorAll('mjx-container')];
const transparent = c => c === 'rgba(0, 0, 0, 0)' || c === 'transparent';
const shown = e => {                                        // the background colour one sees behind an element
  for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (!transparent(c)) return c; }
  return 'rgb(255, 255, 255)'; };
const paper = shown(document.querySelector('main') || document.body);
return {
  title: document.title,
  mathjax: !!(window.MathJax && MathJax.startup && MathJax.startup.document),
  math_rendered: math.filter(m => m.querySelector('svg')).length,
  math_display: math.filter(m => m.getAttribute('display') === 'true' && m.querySelector('svg')).length,
  math_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
  raw_tex: [...document.querySelectorAll('.jp-RenderedMarkdown')].filter(e => {      // display math left as text
    const c = e.cloneNode(true); c.querySelectorAll('code, pre, mjx-container').forEach(x => x.remove());
    return /\\$\\$[^$]+\\$\\$/.test(c.textContent); }).length,
  images: imgs.length,
  broken_images: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 60)),
  plotly: figs.length,
  plotly_drawn: figs.filter(f => f._fullLayout && f.querySelector('.main-svg')).length,
  side: [...document.querySelectorAll('nav.le-side a.le-chapter')].map(a => [a.href, a.textContent.trim(), a.classList.contains('le-here')]),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  solutions: [...document.querySelectorAll('.le-solutions a')].map(a => [a.getAttribute('href'), a.textContent.trim()]),
  prompts: document.querySelectorAll('.jp-InputPrompt, .jp-OutputPrompt').length,
  slow_notes: document.querySelectorAll('.le-slow-note').length,
  widget_notes: document.querySelectorAll('.le-widget-note').length,
  widget_snapshots: new Set([...document.querySelectorAll('.le-widget-note')].map(n => n.closest('.jp-Cell'))
    .filter(c => c && c.querySelector('.jp-OutputArea img, .jp-OutputArea .plotly-graph-div'))).size,
  bare_code_blocks: [...document.querySelectorAll('.jp-RenderedMarkdown pre')].filter(p =>   // no box of its own
    shown(p) === paper || parseFloat(getComputedStyle(p).paddingLeft) === 0).length,
  resources: performance.getEntriesByType('resource').map(r => r.name),
};
"""


def _in_site(url: str, base: str) -> str | None:
    "The site file a URL points to (without its #fragment), or None if it points outside the site."
    url = urllib.parse.unquote(url.split('#')[0])
    base = urllib.parse.unquote(base)
    return url[len(base):] if url.startswith(base) else None


def _local(url: str) -> bool:
    "Whether a URL points at this machine (a file, or the test's servers), not at a web page outside."
    return url.startswith('file:') or urllib.parse.urlsplit(url).hostname == '127.0.0.1'


def _narrow_width(browser) -> dict:
    "The page's width at a phone's screen width (the window's content area set to PHONE CSS pixels)."
    browser.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', dict(width=PHONE, height=844, deviceScaleFactor=1, mobile=False))
    try:
        browser.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => setTimeout(() => done(1), 100));")
        return browser.execute_script("return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth};")
    finally:
        browser.execute_cdp_cmd('Emulation.clearDeviceMetricsOverride', {})


def test_manifest_lists_pages():
    assert PAGES and PAGES[0]['file'] == 'index.html'
    assert all((SITE / p['file']).is_file() for p in PAGES)
    titles = [p['title'] for p in LISTED]
    assert len(set(titles)) == len(titles), 'two chapters share a title'
    runs = [part for part, _ in itertools.groupby(p['part'] for p in LISTED if p['part'])]
    assert len(runs) == len(set(runs)), f'the chapters of a part are not together: {runs}'
    for p in PAGES:                                           # every solutions page is linked from its chapter, and back
        if p['kind'] == 'solutions': assert any(c.get('solutions') == p['file'] for c in PAGES), p['file']
        if p.get('solutions'): assert (SITE / p['solutions']).is_file()
    assert MANIFEST.get('solutions') is False or any(p['kind'] == 'solutions' for p in PAGES)


@pytest.mark.parametrize('way', WAYS)
@pytest.mark.parametrize('page', PAGES, ids=[p['file'] for p in PAGES])
def test_page_renders(browser, bases, way, page):
    base = bases[way]
    browser.get(base + page['file'])
    browser.execute_async_script(_SETTLE)
    got = browser.execute_script(_INSPECT)
    errors = [e['message'] for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, f"JavaScript errors on {page['file']}: {errors[:3]}"
    outside = [r for r in got['resources'] if not r.startswith(('data:', 'blob:')) and _in_site(r, base) is None]
    assert not outside, f"{page['file']} loaded from outside the site: {outside[:3]}"
    assert got['title'] == page['title'], f"tab title {got['title']!r}, chapter title {page['title']!r}"
    assert got['mathjax'], 'MathJax did not load'
    assert got['math_rendered'] >= page['math'], f"math typeset: {got['math_rendered']} formulas, {page['math']} in the notebook"
    assert got['math_display'] >= page['math_display'], f"displayed math typeset: {got['math_display']} of {page['math_display']}"
    assert got['math_rendered'] - got['math_display'] >= page['math'] - page['math_display'], 'inline math left as text'
    assert got['math_errors'] == 0 and got['raw_tex'] == 0
    assert got['images'] == page['images'] and not got['broken_images'], got['broken_images']
    assert got['plotly'] == page['plotly'] and got['plotly_drawn'] == page['plotly'], \
        f"plotly figures drawn: {got['plotly_drawn']} of {page['plotly']}"
    assert got['prompts'] == 0, 'In [ ]: / Out[ ]: prompts on the page'
    assert got['slow_notes'] == page['slow'], f"{got['slow_notes']} notes on slow cells, {page['slow']} without output"
    assert got['widget_notes'] == page.get('widgets', 0), f"{got['widget_notes']} widget notes, {page.get('widgets', 0)} widgets"
    assert got['widget_snapshots'] == page.get('widget_snapshots', 0), \
        f"{got['widget_snapshots']} widget cells show a snapshot, {page.get('widget_snapshots', 0)} stored one"
    assert got['bare_code_blocks'] == 0, 'a code block in the text has no background or no padding'
    files = {p['file'] for p in PAGES}
    side = [(_in_site(href, base), label, here) for href, label, here in got['side']]
    assert [f for f, _, _ in side] == [p['file'] for p in LISTED], side
    labels = [label for _, label, _ in side]
    assert len(set(labels)) == len(labels), f'navigation labels repeat: {labels}'
    assert all(p['title'] in label for p, label in zip(LISTED, labels)), labels
    assert [f for f, _, here in side if here] == ([] if page['kind'] == 'solutions' else [page['file']])
    targets = {url: _in_site(url, base) for url in got['links'] if _local(url)}
    broken = [url for url, f in targets.items() if f is None or (f and f not in files and not (SITE / f).is_file())]
    assert not broken, f"links from {page['file']} to nowhere: {broken[:3]}"
    assert got['solutions'] == ([[page['solutions'], 'Solutions']] if page.get('solutions') else [])
    if way == 'file':
        width = _narrow_width(browser)
        assert width['inner'] == PHONE and width['scroll'] <= PHONE, \
            f"{page['file']} is {width['scroll']} px wide on a {PHONE}-px screen"


# Every plotly figure with a slider on the page: its steps, whether each step names a loaded frame, and whether
# animating to the last step's frame completes (what dragging the slider to its end does).
_SLIDERS = """
const done = arguments[arguments.length - 1];
const figs = [...document.querySelectorAll('.plotly-graph-div')].filter(f => f._fullLayout && (f._fullLayout.sliders || []).length);
Promise.all(figs.map(async f => {
  const frames = ((f._transitionData || {})._frames || []).map(fr => fr.name);
  const steps = f._fullLayout.sliders[0].steps || [];
  const named = steps.filter(s => s.method === 'animate' && s.args && s.args[0] && frames.includes(String(s.args[0][0])));
  let moved = false;
  if (named.length) {
    const target = String(named[named.length - 1].args[0][0]);
    try { await Plotly.animate(f, [target], {frame: {duration: 0, redraw: true}, transition: {duration: 0}, mode: 'immediate'});
          moved = true; } catch (e) { moved = false; }
  }
  return {frames: frames.length, steps: steps.length, named: named.length, moved};
})).then(done, e => done({error: String(e)}));
"""

SECOND_HALF = ('05', '08')    # the chapters whose pages the slider count covers


def test_second_half_sliders_and_snapshots(browser, bases):
    "Chapters 05 to 08: at least four pages with a working plotly slider; every widget there shows its snapshot."
    pages = [p for p in PAGES if p['kind'] == 'chapter' and SECOND_HALF[0] <= p['number'][:2] <= SECOND_HALF[1]]
    assert pages, 'no pages of chapters 05 to 08 in the site'
    sliders, broken, widgets = {}, {}, {}
    for page in pages:
        browser.get(bases['file'] + page['file'])
        browser.execute_async_script(_SETTLE)
        figs = browser.execute_async_script(_SLIDERS)
        assert not isinstance(figs, dict), f"{page['file']}: {figs}"
        good = [f for f in figs if f['frames'] > 1 and f['named'] == f['steps'] > 1 and f['moved']]
        if good: sliders[page['file']] = len(good)
        if len(good) < len(figs): broken[page['file']] = [f for f in figs if f not in good]
        if page.get('widgets'): widgets[page['file']] = (page['widgets'], page.get('widget_snapshots', 0))
    print(f"pages of chapters 05-08 with plotly sliders (figures): {sliders}; widgets (widgets, snapshots): {widgets}")
    assert not broken, f"plotly sliders whose steps do not move through loaded frames: {broken}"
    assert len(sliders) >= 4, (f"only {len(sliders)} of the {len(pages)} pages of chapters 05-08 carry a plotly figure with a "
                               f"working slider: {sorted(sliders) or 'none'}")
    without = {f: n for f, n in widgets.items() if n[1] < n[0]}
    assert not without, f"widgets without a stored snapshot figure in their cell (widgets, snapshots): {without}"
