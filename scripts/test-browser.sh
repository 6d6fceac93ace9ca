#!/bin/sh
# Makes sure a chromium for the console's browser tests is installed and prints `export CHROMIUM_PATH=...`.
# Uses CHROMIUM_PATH as given when set; otherwise installs Debian's `chromium` with apt-get when /usr/bin/chromium
# is missing (as root, or through `sudo -n`). Playwright never downloads a browser: the tests launch this one.
set -eu
echo "export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "export CHROMIUM_PATH='${CHROMIUM_PATH}'"
  exit 0
fi
path=/usr/bin/chromium
if [ ! -x "$path" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test-browser.sh: no apt-get; install chromium and set CHROMIUM_PATH to it" >&2
    exit 0
  fi
  as_root() {
    if [ "$(id -u)" = "0" ]; then "$@"; else sudo -n "$@"; fi
  }
  echo "scripts/test-browser.sh: installing Debian's chromium for the browser tests" >&2
  install="apt-get install -y -qq --no-install-recommends chromium fonts-liberation"
  # A fresh image has no package lists: update once and retry only when the first try fails.
  as_root env DEBIAN_FRONTEND=noninteractive $install >/dev/null 2>&1 \
    || { as_root apt-get update -qq >&2 && as_root env DEBIAN_FRONTEND=noninteractive $install >&2; } \
    || { echo "scripts/test-browser.sh: apt-get could not install chromium" >&2; exit 0; }
fi
echo "export CHROMIUM_PATH='${path}'"
