#!/usr/bin/env bash
# The README's first command: runs the example workflow headless on your ComfyUI and prints the PNG's path.
#   bash scripts/img2img.sh [--comfyui PATH] [--python PYTHON] [--download [comfyui]] [--cpu] [img2img.py options]
# --help answers at once (nothing is set up or written). ComfyUI: --comfyui PATH, else $COMFYUI_PATH (the same
# thing), else ~/comfy/ComfyUI. Python: --python / $COMFYUI_PYTHON, else the one that runs that ComfyUI (its
# venv/ or .venv/, the portable build's python_embeded), else an activated virtual environment, else python3.
# Only where there is no ComfyUI at all does it make one (scripts/setup.sh --run: ComfyUI and the run's own
# requirements in .venv). Nothing is ever installed into your environment; nothing in your ComfyUI is written.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

say() { printf '[img2img] %s\n' "$*" >&2; }
die() { printf '[img2img] error: %s\n' "$*" >&2; exit 1; }

comfy=${COMFYUI_PATH:-}
python=${COMFYUI_PYTHON:-}
rest=()
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help)
      # Before any set-up: the help needs the standard library only, and writes nothing (-B: no __pycache__).
      exec "${python:-python3}" -B "$here/img2img.py" --help ;;
    --comfyui) [ $# -ge 2 ] || die "--comfyui needs a path"; comfy=$2; shift 2 ;;
    --comfyui=*) comfy=${1#--comfyui=}; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; python=$2; shift 2 ;;
    --python=*) python=${1#--python=}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

# --- ComfyUI ---------------------------------------------------------------------------------------
if [ -z "$comfy" ] && [ -f "$HOME/comfy/ComfyUI/main.py" ]; then
  comfy=$HOME/comfy/ComfyUI
fi
if [ -n "$comfy" ]; then
  comfy=${comfy/#\~/$HOME}
  [ -f "$comfy/main.py" ] && [ -d "$comfy/comfy" ] ||
    die "$comfy is not a ComfyUI folder (no main.py and comfy/ there). Give the folder that holds ComfyUI's
       main.py: --comfyui PATH or COMFYUI_PATH=PATH."
  comfy=$(cd "$comfy" && pwd)
else
  # No ComfyUI anywhere: make one, with an environment holding what the run needs (not the tests' tools).
  say "no ComfyUI given (--comfyui PATH or COMFYUI_PATH) and none at ~/comfy/ComfyUI: setting one up"
  env_lines=$(bash "$here/setup.sh" --run)
  comfy=$(sed -n 's/^COMFYUI_PATH=//p' <<<"$env_lines")
  [ -n "$python" ] || python=$(sed -n 's/^VENV=//p' <<<"$env_lines")/bin/python
fi

# --- the Python that runs it -----------------------------------------------------------------------
if [ -z "$python" ]; then
  for candidate in "$comfy/venv/bin/python" "$comfy/.venv/bin/python" \
                   "$comfy/venv/Scripts/python.exe" "$comfy/.venv/Scripts/python.exe" \
                   "$comfy/../python_embeded/python.exe" "$comfy/../python_embeded/python" \
                   "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "${CONDA_PREFIX:+$CONDA_PREFIX/bin/python}" \
                   "${SDEDIT_VENV:-$repo/.venv}/bin/python"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then python=$candidate; break; fi
  done
  [ -n "$python" ] || python=$(command -v python3 || true)
  [ -n "$python" ] || die "no Python found for $comfy: name the one that runs it with --python PATH or COMFYUI_PYTHON."
fi
[ -x "$python" ] || command -v "$python" >/dev/null || die "--python $python: no such program."
say "ComfyUI: $comfy"
say "Python:  $python"
# img2img.py checks that this Python has what the run needs, and says what to install where it has not.
exec "$python" "$here/img2img.py" --comfyui "$comfy" ${rest[@]+"${rest[@]}"}
