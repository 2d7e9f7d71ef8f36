#!/usr/bin/env bash
# Installs the reference page's pinned onnxruntime-web (web/package-lock.json) into web/node_modules
# with `npm ci`, when it is missing or older than the lock file; scripts/setup_env.sh and
# scripts/install_system_deps.sh run it. Without npm it says so and does nothing (the browser check
# then cannot run: scripts/install_system_deps.sh installs npm).
set -euo pipefail
cd "$(dirname "$0")/../web"

stamp=node_modules/.package-lock.json  # npm writes it on every install
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "no npm: web/node_modules not installed (scripts/install_system_deps.sh installs npm)" >&2
    exit 0
fi
# no install scripts: the page needs onnxruntime-web's dist files only
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
echo "web/node_modules ready: onnxruntime-web $(node -p 'require("./node_modules/onnxruntime-web/package.json").version')"
