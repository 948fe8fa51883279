"""What the first run needs of the Python that runs the user's ComfyUI, and which device it would use.

Standard library only (it runs before anything is known about that Python). Nothing is installed: where a package
is missing, the message says which and the one command that installs it, and the user decides.
"""
import importlib.metadata
import pathlib
import re

# ComfyUI starts without these (its log says so): torchaudio (audio nodes only; no build for every torch), and the
# lines under requirements.txt's "#non essential dependencies" (some of the host's extra nodes).
OPTIONAL = {"torchaudio"}


def requirement_names(requirements: pathlib.Path) -> tuple[list[str], list[str]]:
    """(essential, optional) distribution names of a ComfyUI requirements.txt."""
    essential, optional = [], []
    target = essential
    for line in requirements.read_text().splitlines():
        if re.match(r"\s*#\s*non[ -]essential", line, re.I):
            target = optional
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
        if match:
            name = match.group(1)
            (optional if name.lower() in OPTIONAL else target).append(name)
    return essential, optional


def missing(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def check(comfyui: pathlib.Path, python: str) -> list[str]:
    """The optional packages that are missing (a note for the user). Raises SystemExit naming the essential ones
    that are missing and the command that installs them into this Python."""
    requirements = comfyui / "requirements.txt"
    if not requirements.is_file():
        return []
    essential, optional = requirement_names(requirements)
    lacking = missing(essential)
    if lacking:
        raise SystemExit(
            f"The Python at {python} lacks what ComfyUI needs to run: {', '.join(lacking)}.\n"
            f"Is it the Python that runs your ComfyUI? If not, name that one: --python PATH (or COMFYUI_PYTHON).\n"
            f"If it is, install ComfyUI's requirements into it (nothing is installed for you):\n"
            f"    \"{python}\" -m pip install -r \"{requirements}\"")
    return missing(optional)


def device(force_cpu: bool) -> tuple[str, bool]:
    """(what the run uses, in words; whether ComfyUI must be told --cpu). Where ComfyUI would run: CUDA (or ROCm),
    Apple's MPS, Intel's XPU; else the CPU (ComfyUI needs --cpu then: it would ask torch for a CUDA device)."""
    if force_cpu:
        return "the CPU (--cpu)", True
    import torch
    if torch.cuda.is_available():
        return f"the GPU ({torch.cuda.get_device_name(0)})", False
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "the GPU (Apple MPS)", False
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "the GPU (Intel XPU)", False
    return "the CPU (no GPU that torch can use)", True
