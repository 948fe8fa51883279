"""SDEdit image-to-image for ComfyUI (Meng et al. 2022): Encode → Add Noise → Denoise → Decode."""
if __package__:  # ComfyUI imports the pack as a package; pytest, in a checkout whose folder name is not one, does not
    from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./js"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
