#!/usr/bin/env bash
# Installs what headertap needs and is missing, then builds. Safe to re-run:
# each step is skipped when already done. Sourced by start.sh and test.sh.
#   ensure_root "$0" "$@"  re-runs the calling script as root (through sudo)
#   ensure_deps build      toolchain + npm packages + build
#   ensure_deps test       the same, plus what the tests drive (nginx, curl, python3)
#                          and the kernel matrix needs (qemu, busybox, cpio)
# Everything these functions print goes to stderr: stdout belongs to the
# program the script runs (`start.sh --format jsonl | jq .` must parse).
set -euo pipefail

HT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=6

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'headertap: %s\n' "$*" >&2; exit 2; }

# Loading eBPF programs and installing packages need root. A user shell
# re-runs the script through sudo, keeping PATH (so that the same node, e.g.
# one from nvm, is found) and the OTEL_* and HEADERTAP_* settings, which
# sudo would otherwise reset; a root shell (containers, cloud VMs, CI) needs
# no sudo at all, and often has none.
ensure_root() {
  local script="$1" keep=() name
  shift
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null ||
    die "$(basename "$script") needs root (to install packages and load eBPF programs) and sudo is not installed: run it from a root shell (su -), or install sudo"
  while IFS= read -r name; do
    keep+=("$name=${!name}")
  done < <(compgen -e | grep -E '^(OTEL_|HEADERTAP_)' || true)
  say "not root: re-running as root through sudo"
  exec sudo -- env "PATH=$PATH" "${keep[@]}" "$script" "$@"
}

BUILD_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev make gcc libc6-dev pkg-config)
TEST_PACKAGES=(nginx-light curl python3 python3-grpcio iproute2 openssl nghttp2-client util-linux systemd wrk sudo golang-go golang-google-grpc-dev binutils)
# The kernel matrix (npm run test:kernels): Debian's kernels booted under qemu
# with a busybox initramfs (test/kernels/).
KERNEL_TEST_PACKAGES=(qemu-system-x86 busybox-static cpio xz-utils)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages ($*); run this as root or install them with: sudo apt-get install $*"
  command -v apt-get >/dev/null || die "missing packages ($*) and no apt-get: install them with your package manager"
  if [ -z "${HT_APT_UPDATED:-}" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
    HT_APT_UPDATED=1
  fi
  say "installing Debian packages: $*"
  # Wait for another apt (unattended-upgrades on a fresh VM, a parallel
  # install) instead of failing on its lock.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_bpftool() {
  command -v bpftool >/dev/null && return 0
  [ -x /usr/sbin/bpftool ] && return 0
  # Debian ships bpftool on its own; Ubuntu in linux-tools for the running kernel.
  if apt-cache show bpftool >/dev/null 2>&1; then
    apt_install bpftool
  else
    apt_install "linux-tools-$(uname -r)" linux-tools-common
  fi
}

ensure_node() {
  command -v node >/dev/null || die "Node.js >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} is needed and not installed; install it from https://nodejs.org or your distribution (NodeSource for Debian/Ubuntu)"
  local v major minor
  v="$(node -p 'process.versions.node')"
  major="${v%%.*}"; minor="${v#*.}"; minor="${minor%%.*}"
  if [ "$major" -lt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -lt "$NODE_MIN_MINOR" ]; }; then
    die "Node.js $v is too old; headertap needs >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR}"
  fi
}

ensure_npm_packages() {
  cd "$HT_ROOT"
  # npm ci when node_modules is missing or older than the lockfile.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

ensure_build() {
  cd "$HT_ROOT"
  say "building (BPF object, loader, TypeScript)"
  npm run --silent build
}

ensure_deps() {
  # stdout stays the caller's: every message of the installs and the build goes to stderr.
  _ensure_deps "$@" >&2
}

_ensure_deps() {
  local what="${1:-build}" pkgs
  ensure_node
  pkgs=("${BUILD_PACKAGES[@]}")
  [ "$what" = test ] && pkgs+=("${TEST_PACKAGES[@]}" "${KERNEL_TEST_PACKAGES[@]}")
  mapfile -t missing < <(missing_packages "${pkgs[@]}")
  [ "${#missing[@]}" -eq 0 ] || apt_install "${missing[@]}"
  ensure_bpftool
  ensure_npm_packages
  ensure_build
}
