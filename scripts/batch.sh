#!/usr/bin/env bash
# Sets up (scripts/setup.sh), installs Ray on first use, then runs an API workflow over a folder of images:
# see scripts/batch.py --help.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
env_lines=$(bash "$here/setup.sh")
comfyui=$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")
venv=$(sed -n 's/^VENV=//p' <<<"$env_lines")
# Ray is needed by this command only (never by the pack): the pin of requirements-dev.txt, installed on first use.
ray_pin=$(sed -n 's/^\(ray\[data\]==[0-9.]*\).*/\1/p' "$here/../requirements-dev.txt")
if ! "$venv/bin/python" -c "import ray, ray.data" 2>/dev/null; then
  printf '[batch] Ray is not installed in %s; installing %s (about 600 MB, once)\n' "$venv" "$ray_pin" >&2
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$ray_pin"; then
    printf '[batch] error: pip could not install %s (no access to the package index?). Install it into %s by\n' \
      "$ray_pin" "$venv" >&2
    printf '        other means (e.g. pip install from a wheel folder: pip install --no-index --find-links DIR %s)\n' \
      "'$ray_pin'" >&2
    exit 1
  fi
fi
exec "$venv/bin/python" "$here/batch.py" --comfyui "$comfyui" "$@"
