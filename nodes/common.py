"""What the nodes share: the host's node API, their menu category and the checks on a latent."""
import torch

try:  # the host's dated node API (every release from 0.3.48 on); `latest` is marked unstable
    from comfy_api.v0_0_2 import ComfyExtension, io
except ImportError:  # a host that has dropped the dated alias
    from comfy_api.latest import ComfyExtension, io

__all__ = ["CATEGORY", "ComfyExtension", "check_latent_channels", "io"]

CATEGORY = "SDEdit"

_KINDS = {1: "1-D (audio)", 2: "2-D (image)", 3: "3-D (video)"}


def check_latent_channels(node: str, input_name: str, samples, model) -> None:
    """A clear error, naming the input and the fix, for a latent this pack cannot noise or denoise
    with `model`: a nested latent (several in one, as audio-video models make since ComfyUI 0.3.67),
    something that is not a tensor, or a tensor of another model's channels or dimensions."""
    if getattr(samples, "is_nested", False):
        raise ValueError(
            f"{node}: input '{input_name}' is a nested latent (several latents in one, as audio-video "
            "models make), which SDEdit does not support. Give it a single image or video latent, e.g. "
            "the video part from the host's LTXVSeparateAVLatent node, or use the host's own samplers.")
    if not isinstance(samples, torch.Tensor):
        raise ValueError(
            f"{node}: input '{input_name}' holds a {type(samples).__name__}, not a latent tensor. "
            "Connect a LATENT made by SDEdit 1 · Encode (or the host's VAE Encode).")
    latent_format = model.get_model_object("latent_format")
    expected = latent_format.latent_channels
    if samples.ndim < 2 or samples.shape[1] != expected:
        got = samples.shape[1] if samples.ndim >= 2 else "no"
        raise ValueError(
            f"{node}: input '{input_name}' has {got} latent channels but the model expects {expected}. "
            "Fix: encode the image with the VAE that belongs to this model (the same checkpoint's VAE output) "
            "and connect the same MODEL to every SDEdit node.")
    dims = getattr(latent_format, "latent_dimensions", 2)
    if samples.ndim != dims + 2:
        got = _KINDS.get(samples.ndim - 2, f"{samples.ndim - 2}-D")
        raise ValueError(
            f"{node}: input '{input_name}' is a {got} latent but the model works on "
            f"{_KINDS.get(dims, f'{dims}-D')} latents. Encode with the VAE that belongs to this model "
            "and connect the same MODEL to every SDEdit node.")
