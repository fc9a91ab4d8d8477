#!/usr/bin/env bash
# Quick start: install what is missing, build, and run headertap with the
# embedded OTLP receiver printing every captured HTTP exchange. Run it as
# root, or as a user with sudo: it re-runs itself through sudo.
# Extra arguments go to `headertap run`, e.g. --port 8080 or --format jsonl.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ensure-deps.sh"
ensure_root "$HT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")" "$@"
ensure_deps build
say "starting headertap (Ctrl-C to stop); try: curl http://example-service/ in another terminal"
exec "$HT_ROOT/bin/headertap" run --embedded-receiver "$@"
