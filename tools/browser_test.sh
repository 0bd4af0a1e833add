#!/usr/bin/env bash
# The course site's browser test: installs Debian's chromium + chromium-driver if missing (needs root and the Debian
# package mirror), builds the site from the notebooks as committed (with their saved outputs) into build/site, and opens
# every page in headless Chromium (tests/test_site_browser.py). Usage: tools/browser_test.sh [SITE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
site=${1:-build/site}
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing chromium and chromium-driver (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== building the site into $site"
rm -rf "$site"
"$venv/bin/leech-explorer" site --out "$site"
echo "== opening every page in headless $(chromium --version 2>/dev/null)"
LEECH_SITE="$site" "$venv/bin/pytest" -q tests/test_site_browser.py
