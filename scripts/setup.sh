#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (run as root): installs the system packages fourwall
# and its tests use, the npm dependencies, builds the bundle and the root-mode launcher.
# A second run does nothing but check.
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap: the namespaces runtime · util-linux: prlimit, setpriv · gcc/libc6-dev: the root-mode
# launcher · socat, nftables, iproute2: the egress wall · curl, git, python3, openssl, tmux,
# bsdutils (script): real clients and terminals in the tests · ripgrep: the peer srt in bench ·
# chromium: the approval inbox page, tested headless · runsc: gVisor, the --runtime gvisor box.
# squid-openssl: the second egress backend (egress.proxy: squid), started per box, never as a service;
# the OpenSSL build (not Debian's default GnuTLS "squid", which it replaces) can peek at the TLS SNI.
# docker.io, busybox-static: the --runtime docker box (its default image is busybox-static + socat).
# qemu-system-x86: the --runtime vm box (its guest is Debian's kernel + a busybox initramfs, scripts/build-vm.sh).
PACKAGES=(iptables bubblewrap util-linux bsdutils gcc libc6-dev socat nftables iproute2 curl git python3 openssl tmux procps psmisc ripgrep chromium runsc squid-openssl docker.io busybox-static qemu-system-x86)

say() { printf '\033[36msetup:\033[0m %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing system packages: ${missing[*]} — run this script as root once (apt-get install ${missing[*]})"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # squid-openssl conflicts with (and replaces) the GnuTLS "squid" an older set-up installed: apt removes it.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts squid as a system-wide service on :3128; fourwall starts its own per box and
  # wants no proxy left listening on the host.
  if [[ " ${missing[*]} " == *" squid-openssl "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now squid >/dev/null 2>&1 || true
  fi
fi

# npm dependencies: install when missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The native helpers (native/*.c: the root-mode launcher, the fast `exec` path): rebuilt when the source changes.
mkdir -p native/build
for src in native/*.c; do
  bin="native/build/$(basename "$src" .c)"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ native/common.h -nt "$bin" ] || [ native/pty-relay.h -nt "$bin" ]; then
    say "compiling $src"
    # the bridge runs inside gVisor and docker images: static (no libc needed there, no dynamic loading under ptrace)
    static=; [ "$bin" = native/build/fourwall-bridge ] && static=-static
    gcc -O2 -Wall -Wextra -Werror $static -o "$bin" "$src"
  fi
done

# The microVM's guest kernel and initramfs: rebuilt when the kernel package or vm/ changes.
bash scripts/build-vm.sh

# The bundle: rebuilt when any source is newer than it.
if [ ! -f dist/fourwall.js ] || [ -n "$(find src -newer dist/fourwall.js -name '*.ts' -print -quit)" ]; then
  say "building"
  node scripts/build.mjs
fi
