#!/usr/bin/env bash
# PNG screenshots of the built site (front page and walkthrough) with headless Chromium, to look at
# what a reader sees. Build the site first: python scripts/build_site.py
#   bash scripts/screenshot_site.sh [SITE_DIR] [OUT_DIR]      (defaults: build/site, build/screenshots)
# Needs chromium (Debian: apt-get install -y chromium). Works offline: pages are opened as file://.
set -euo pipefail
cd "$(dirname "$0")/.."
site="$(cd "${1:-build/site}" && pwd)"
out="${2:-build/screenshots}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$chrome" ] || { echo "error: chromium not found (apt-get install -y chromium)" >&2; exit 2; }
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
shot() {  # shot PAGE NAME HEIGHT
    "$chrome" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
        --user-data-dir="$profile" --window-size="1280,$3" --screenshot="$out/$2.png" \
        "file://$site/$1" >/dev/null 2>&1
    echo "$out/$2.png"
}
shot README.html front 2400
shot notebooks/00_walkthrough.html walkthrough 2400
shot notebooks/00_walkthrough.html walkthrough-full 9000
shot docs/site/figures.html figures 2400
