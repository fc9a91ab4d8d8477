#!/usr/bin/env bash
# The whole test suite: lint, unit tests, component tests (local servers and
# processes, no root), and (as root) the real-eBPF integration tests. Installs what is missing first. Without root the
# integration tests are skipped with the reason printed; set
# HEADERTAP_REQUIRE_EBPF=1 to make that a failure (CI does).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-deps.sh"
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
say "all tests passed"
