#!/usr/bin/env bash
# The host compatibility matrix: runs the node-level and the server test suites against each ComfyUI
# tree given (COMFYUI_PATH per tree, one shared virtual environment) and writes docs/compat.md.
#   bash tools/compat.sh [--server ends|all|none|VERSION,...] [--node all|none]
#                        [--families ends|all|none|VERSION,...] [--out FILE] HOST_DIR...
# The server and the model families suites run on the oldest and the newest tree unless told otherwise.
# The environment is $SDEDIT_VENV (default .venv, as scripts/setup.sh makes it). Nothing is downloaded:
# a missing tree or environment is reported with what to do. Exit status 1 when any suite failed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SDEDIT_VENV:-$repo/.venv}
[ -x "$venv/bin/python" ] || {
  echo "compat: no virtual environment at $venv. Run scripts/setup.sh first, or set SDEDIT_VENV." >&2; exit 2; }
exec "$venv/bin/python" "$repo/tools/compat.py" "$@"
