"""What the nodes share: the host's node API, their menu category and the check on latent channels."""
try:  # the host's dated node API; `latest` is marked unstable and may change under us
    from comfy_api.v0_0_2 import ComfyExtension, io
except ImportError:  # releases without the dated alias
    from comfy_api.latest import ComfyExtension, io

__all__ = ["CATEGORY", "ComfyExtension", "check_latent_channels", "io"]

CATEGORY = "SDEdit"


def check_latent_channels(node: str, input_name: str, samples, model) -> None:
    """A clear error, naming the input and the fix, when a latent does not fit the model."""
    expected = model.get_model_object("latent_format").latent_channels
    if samples.ndim < 2 or samples.shape[1] != expected:
        got = samples.shape[1] if samples.ndim >= 2 else "no"
        raise ValueError(
            f"{node}: input '{input_name}' has {got} latent channels but the model expects {expected}. "
            "Fix: encode the image with the VAE that belongs to this model (the same checkpoint's VAE output) "
            "and connect the same MODEL to every SDEdit node.")
