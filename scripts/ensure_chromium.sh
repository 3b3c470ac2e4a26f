#!/usr/bin/env bash
# Debian's Chromium and its matching chromedriver for the browser test (tests/integration/test_catalog_page_browser.py).
# Idempotent: does nothing when both are installed. Browser downloads (Selenium Manager, Playwright)
# are not used: the system packages are the browser under test.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "chromium and chromedriver are missing and this is not a Debian/Ubuntu machine:" \
         "install them so that /usr/bin/chromium and /usr/bin/chromedriver exist" >&2
    exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "installing chromium needs root (apt-get); run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
fi
echo "installing chromium + chromium-driver (Debian packages) for the browser test"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
