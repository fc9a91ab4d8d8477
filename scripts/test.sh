#!/usr/bin/env bash
# The whole test suite: lint, unit tests, component tests (local servers and
# processes, no root), the real-eBPF integration tests and the kernel matrix
# (headertap in Debian's stock kernels booted under qemu: test/kernels/run.ts). Installs what is
# missing first. Runs as root: from a user shell it re-runs itself through
# sudo. (`npm run test:unit` needs no root; the integration tests skip with
# the reason printed when run without root, unless HEADERTAP_REQUIRE_EBPF=1,
# which CI sets, makes that a failure.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-deps.sh"
ensure_root "$HT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")" "$@"
ensure_deps test
cd "$HT_ROOT"
say "lint"
npm run --silent lint
say "unit tests"
npm run --silent test:unit
say "component tests (local receivers and processes, no root)"
npm run --silent test:component
say "integration tests (real eBPF)"
npm run --silent test:integration
say "kernel matrix (Debian's stock kernels under qemu)"
npm run --silent test:kernels
say "all tests passed"
