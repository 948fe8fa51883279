#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the example workflow headless: see scripts/img2img.py --help.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_lines=$(bash "$here/setup.sh")
comfyui=$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")
venv=$(sed -n 's/^VENV=//p' <<<"$env_lines")
exec "$venv/bin/python" "$here/img2img.py" --comfyui "$comfyui" "$@"
