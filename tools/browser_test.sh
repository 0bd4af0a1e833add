#!/usr/bin/env bash
# The course site's browser test: installs Debian's chromium + chromium-driver if missing (needs root and the Debian
# package mirror), builds the site from the notebooks as committed (with their saved outputs, and the worked solutions)
# into build/site, and opens every page in headless Chromium (tests/test_site_browser.py): served at a web server's
# root, served under a sub-path, and as a file, at desktop width and (as a file) at a phone's 390 px.
# Usage: tools/browser_test.sh [SITE_DIR] [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
site=${1:-build/site}
shift || true
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== building the site into $site"
rm -rf "$site"
"$venv/bin/leech-explorer" site --solutions --out "$site"
echo "== opening every page in headless $(chromium --version 2>/dev/null)"
LEECH_SITE="$site" "$venv/bin/pytest" -q tests/test_site_browser.py "$@"
