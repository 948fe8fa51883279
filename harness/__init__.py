"""The one harness of this repository: tests, benchmarks and the commands of scripts/ use it, and nothing else
finds ComfyUI, loads the pack, builds the test checkpoint, starts a server or runs a prompt.

- harness.host: find ComfyUI (COMFYUI_PATH, else ~/comfy/ComfyUI), put it on sys.path on the CPU, load the pack.
- harness.checkpoint: the small random-weight SD1.5 test checkpoint, built once and cached (imports torch).
- harness.server: a real `main.py` server in a workspace of its own, and running a prompt to its images.
- harness.families: small random-weight models of other families (SD3, Wan 2.1, SDXL, Flux).
- harness/test_nodes: a test-only custom node (seeded random conditioning) a test server may load; never the pack's.

Importing the package, host and server use the standard library only.
"""
from harness.host import (API_WORKFLOW, EXAMPLES, PACK, REPO, SAMPLE_IMAGE, UI_WORKFLOW, HostMissing,
                          comfyui_path, load_checkpoint, load_pack, setup_host)
from harness.server import ComfyServer, PromptFailed, find_checkpoint, prepare_workspace

__all__ = ["API_WORKFLOW", "EXAMPLES", "PACK", "REPO", "SAMPLE_IMAGE", "UI_WORKFLOW", "ComfyServer", "HostMissing",
           "PromptFailed", "comfyui_path", "find_checkpoint", "load_checkpoint", "load_pack", "prepare_workspace",
           "setup_host"]
