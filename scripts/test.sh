#!/usr/bin/env bash
# Sets up (scripts/setup.sh), runs the static checks of ruff.toml, then every test on the real ComfyUI
# runtime. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_lines=$(bash "$here/setup.sh")
export COMFYUI_PATH=$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")
venv=$(sed -n 's/^VENV=//p' <<<"$env_lines")
cd "$here/.."
"$venv/bin/ruff" check --quiet . || { echo "static checks failed (ruff.toml): fix the lines above" >&2; exit 1; }
exec "$venv/bin/python" -P -m pytest "$@"
