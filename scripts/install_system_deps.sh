#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing: espeak-ng (the demo corpus
# generator) and graphviz (DAG drawings). Slurm and munge come with scripts/slurm_local.sh, which
# the Slurm test runs. Needs root or sudo; does nothing when everything is already there.
set -euo pipefail

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v dot >/dev/null || missing+=(graphviz)
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
