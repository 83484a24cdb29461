#!/usr/bin/env bash
# Install what the headless-browser compatibility tests (tests/browser) and the TURN test need:
#   * Debian's headless Chromium (package chromium-headless-shell, falling back to chromium);
#   * the pinned twilio-video.js in web/node_modules, via `npm ci` from web/package-lock.json;
#   * Debian's coturn (tests/integration/test_turn_credentials.py, test_turn_relay.py);
#   * iproute2 and nftables: test_turn_relay.py puts a client in a network namespace whose UDP
#     is dropped (it skips, saying why, where the machine does not permit namespaces).
# Idempotent and quick when everything is already in place. Safe in CI (root, no tty).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEB="$ROOT/web"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-browser-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
fi

have_chromium() {
    [ -x /usr/lib/chromium/chromium-headless-shell ] || [ -x /usr/lib/chromium/chromium ]
}

# --- coturn (the TURN server the TURN credential test runs) ---------------------------------
if command -v turnserver >/dev/null 2>&1; then
    log "coturn already installed"
elif command -v apt-get >/dev/null 2>&1; then
    log "apt-get install coturn"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends coturn >/dev/null
fi

# --- iproute2 and nftables (the TURN relay test's network namespace and firewall) -----------
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
if [ -z "$missing" ]; then
    log "iproute2 and nftables already installed"
elif command -v apt-get >/dev/null 2>&1; then
    log "apt-get install$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- Chromium -----------------------------------------------------------------------------
if have_chromium; then
    log "chromium already installed"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found; install chromium-headless-shell (or chromium) yourself" && exit 1
    fi
    log "apt-get update"
    $SUDO apt-get update -qq
    if apt-cache show chromium-headless-shell >/dev/null 2>&1; then
        pkg=chromium-headless-shell
    else
        pkg=chromium
    fi
    log "apt-get install $pkg"
    $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    have_chromium || { log "chromium still missing after installing $pkg"; exit 1; }
fi
for bin in /usr/lib/chromium/chromium-headless-shell /usr/lib/chromium/chromium; do
    if [ -x "$bin" ]; then log "$("$bin" --version 2>/dev/null || echo "$bin")"; break; fi
done

# --- twilio-video.js ---------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "npm not found; install Node.js and npm" && exit 1
    fi
    log "apt-get install nodejs npm"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
want="$(node -p "require('$WEB/package-lock.json').packages['node_modules/twilio-video'].version")"
have=""
if [ -f "$WEB/node_modules/twilio-video/package.json" ] \
    && [ -f "$WEB/node_modules/twilio-video/dist/twilio-video.min.js" ] \
    && [ "$WEB/node_modules/.package-lock.json" -nt "$WEB/package-lock.json" ]; then
    have="$(node -p "require('$WEB/node_modules/twilio-video/package.json').version")"
fi
if [ "$have" = "$want" ]; then
    log "twilio-video $have already installed"
elif [ -L "$WEB/node_modules" ]; then
    # A shared install (a git worktree's link to another checkout's node_modules): `npm ci` would
    # empty the link's target under everyone using it. Use it if it holds the pinned version.
    shared="$(readlink -f "$WEB/node_modules")"
    have=""
    if [ -f "$shared/twilio-video/package.json" ] && [ -f "$shared/twilio-video/dist/twilio-video.min.js" ]; then
        have="$(node -p "require('$shared/twilio-video/package.json').version")"
    fi
    [ "$have" = "$want" ] || {
        log "web/node_modules links to $shared, which has twilio-video '${have}', not $want:"
        log "run this script in the checkout that owns it"; exit 1; }
    log "twilio-video $have already installed (shared: $shared)"
else
    log "npm ci (twilio-video $want)"
    # twilio-video declares engines.node >=22; the browser bundle does not care which Node
    # installs it, so do not let a strict engine setting refuse it.
    (cd "$WEB" && npm ci --no-audit --no-fund --ignore-scripts --engine-strict=false \
        --loglevel=error)
    have="$(node -p "require('$WEB/node_modules/twilio-video/package.json').version")"
    [ "$have" = "$want" ] || { log "installed twilio-video $have, expected $want"; exit 1; }
fi
