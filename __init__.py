"""SDEdit image-to-image for ComfyUI (Meng et al. 2022): Encode → Add Noise → Denoise → Decode."""
from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./js"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
