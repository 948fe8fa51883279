#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every test on the real ComfyUI runtime. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_lines=$(bash "$here/setup.sh")
export COMFYUI_PATH=$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")
venv=$(sed -n 's/^VENV=//p' <<<"$env_lines")
cd "$here/.."
exec "$venv/bin/python" -P -m pytest "$@"
