#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing: espeak-ng (the demo corpus
# generator), graphviz (DAG drawings), and for the browser check (export.browser) chromium,
# chromium-driver and npm, then the page's onnxruntime-web (scripts/setup_web.sh); nothing here
# downloads a browser. Slurm and munge come with scripts/slurm_local.sh, which the Slurm test runs.
# Needs root or sudo; does nothing when everything is already there.
set -euo pipefail

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v dot >/dev/null || missing+=(graphviz)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
    exec "$(dirname "$0")/setup_web.sh"
fi

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
"$(dirname "$0")/setup_web.sh"
