#!/usr/bin/env bash
# Sets up a development environment for this pack (scripts/test.sh, CI):
#   1. finds ComfyUI: $COMFYUI_PATH, else ~/comfy/ComfyUI, else clones the pinned release there;
#   2. makes a virtual environment ($SDEDIT_VENV, default .venv) with ComfyUI's requirements and the
#      pinned torch/torchvision pair of scripts/constraints.txt, plus requirements-dev.txt (the tests' tools);
#   3. links this repo into ComfyUI's custom_nodes as sdedit-img2img.
# With --run (scripts/img2img.sh, only where there is no ComfyUI at all): steps 1 and 2 without the tests' tools
# (no Ray, Playwright, diffusers, comfy-cli, Manager, matplotlib), and no step 3 (the run's workspace holds the link).
# SDEDIT_TORCH_INDEX=URL: a second package index for torch, e.g. PyTorch's CPU build on a machine without a GPU.
# Re-running it is quick: the install is skipped while its inputs are unchanged.
# Prints the two paths on its last lines: COMFYUI_PATH=... and VENV=...
set -euo pipefail
mode=tests
case ${1:-} in
  --run) mode=run ;;
  "") ;;
  *) printf '[setup] usage: setup.sh [--run]\n' >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
comfy_release=v0.3.64
comfy_url=${COMFYUI_GIT_URL:-https://github.com/comfyanonymous/ComfyUI.git}
venv=${SDEDIT_VENV:-$repo/.venv}
python=${PYTHON:-python3}
pack_name=sdedit-img2img

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- 1. ComfyUI -----------------------------------------------------------------------------------
if [ -n "${COMFYUI_PATH:-}" ]; then
  comfy=$COMFYUI_PATH
  [ -f "$comfy/main.py" ] && [ -d "$comfy/comfy" ] ||
    die "COMFYUI_PATH=$comfy is not a ComfyUI checkout (no main.py and comfy/ there). Point it at one."
elif [ -f "$HOME/comfy/ComfyUI/main.py" ]; then
  comfy=$HOME/comfy/ComfyUI
else
  comfy=$HOME/comfy/ComfyUI
  say "ComfyUI not found; cloning $comfy_release into $comfy"
  [ -d "$(dirname "$comfy")" ] && made_parent= || made_parent=$(dirname "$comfy")
  mkdir -p "$(dirname "$comfy")"
  if ! git clone --quiet --depth 1 --branch "$comfy_release" "$comfy_url" "$comfy"; then
    rm -rf "$comfy"
    [ -z "$made_parent" ] || rmdir "$made_parent" 2>/dev/null || true  # no empty ~/comfy left behind
    die "could not clone ComfyUI (no network?). Get ComfyUI $comfy_release or newer by other means
        (git clone, comfy-cli, a copy) and run again with COMFYUI_PATH=/path/to/ComfyUI."
  fi
fi
comfy=$(cd "$comfy" && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$comfy/comfyui_version.py" 2>/dev/null || true)
# The oldest release the tests pass on: pyproject.toml's requires-comfyui, the one place it is stated.
oldest=$(sed -n 's/^requires-comfyui = ">=\([0-9.]*\)".*/\1/p' "$repo/pyproject.toml")
[ -n "$oldest" ] || die "pyproject.toml has no requires-comfyui = \">=X.Y.Z\" line"
"$python" - "$version" "$oldest" <<'PY' || die "ComfyUI at $comfy is version '${version:-unknown}'; this pack needs $oldest or newer."
import sys
version, oldest = (tuple(int(p) for p in v.split(".")[:3] if p.isdigit()) for v in sys.argv[1:3])
sys.exit(0 if len(version) == 3 and version >= oldest else 1)
PY
say "ComfyUI $version at $comfy"

# --- 2. virtual environment -----------------------------------------------------------------------
# ComfyUI's requirements minus the torch family, which the constraints pin (torchaudio: see there).
reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$reqs"
dev=("-r" "$repo/requirements-dev.txt")
[ "$mode" = tests ] || dev=()
# The registry's torch for Linux x86-64 is the CUDA build; PyTorch's own index serves others (the CPU build:
# https://download.pytorch.org/whl/cpu). Both match the pin; pip takes the CPU index's 2.14.0+cpu (a local version
# sorts above the registry's 2.14.0).
torch_index=()
[ -z "${SDEDIT_TORCH_INDEX:-}" ] || torch_index=(--extra-index-url "$SDEDIT_TORCH_INDEX")
# A tests environment also serves a run; a run's does not serve the tests (it lacks their tools).
stamp_tests=$( (cat "$reqs" "$repo/scripts/constraints.txt" "$repo/requirements.txt" "$repo/requirements-dev.txt"
                printf %s "${SDEDIT_TORCH_INDEX:-}") | sha256sum | cut -c1-16)
stamp_run=run-$( (cat "$reqs" "$repo/scripts/constraints.txt" "$repo/requirements.txt"
                  printf %s "${SDEDIT_TORCH_INDEX:-}") | sha256sum | cut -c1-16)
stamp_file=$venv/.sdedit-setup
stamp_have=$(cat "$stamp_file" 2>/dev/null || true)
if [ -x "$venv/bin/python" ] && { [ "$stamp_have" = "$stamp_tests" ] ||
                                  { [ "$mode" = run ] && [ "$stamp_have" = "$stamp_run" ]; }; }; then
  say "virtual environment up to date: $venv"
else
  [ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
  if [ "$mode" = run ]; then
    if [ -n "${SDEDIT_TORCH_INDEX:-}" ]; then
      say "installing ComfyUI's requirements into $venv, torch from $SDEDIT_TORCH_INDEX (SDEDIT_TORCH_INDEX)
        where it has the pinned version; several minutes; pip's progress follows"
    else
      say "installing ComfyUI's requirements and torch into $venv: about 3 GB to download and 6 GB on
        disk on Linux (4 GB of it torch's CUDA libraries), several minutes; pip's progress follows"
      if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] && ! command -v nvidia-smi >/dev/null 2>&1; then
        say "no NVIDIA GPU here (no nvidia-smi): those CUDA libraries would go unused. For PyTorch's CPU build
        (under 1 GB) instead, press Ctrl-C now, delete $venv, and run again with
        SDEDIT_TORCH_INDEX=https://download.pytorch.org/whl/cpu"
      fi
    fi
  else
    say "installing ComfyUI's requirements, torch and the tests' tools into $venv (about 7 GB the first time)"
  fi
  "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on \
    -c "$repo/scripts/constraints.txt" ${torch_index[@]+"${torch_index[@]}"} torch torchvision \
    -r "$reqs" -r "$repo/requirements.txt" ${dev[@]+"${dev[@]}"} >&2 ||
    die "pip install failed (see above). With no access to the package index, install the same packages
        into $venv by other means, or point SDEDIT_VENV at an environment that has them."
  if [ "$mode" = run ]; then echo "$stamp_run"; else echo "$stamp_tests"; fi > "$stamp_file"
fi

# --- 3. the pack in custom_nodes ------------------------------------------------------------------
link=$comfy/custom_nodes/$pack_name
if [ "$mode" = run ]; then
  :  # the run's workspace (--base-directory) holds its own link
elif [ -L "$link" ]; then
  [ "$(readlink -f "$link")" = "$repo" ] || { say "re-pointing $link to $repo"; ln -sfn "$repo" "$link"; }
elif [ -e "$link" ]; then
  say "warning: $link exists and is not a link; left as it is (this checkout is not installed there)"
else
  mkdir -p "$comfy/custom_nodes"
  ln -s "$repo" "$link"
  say "linked $link -> $repo"
fi

echo "COMFYUI_PATH=$comfy"
echo "VENV=$venv"
