"""Checks whose messages name the input at fault and the fix."""


def check_latent_channels(node: str, input_name: str, samples, model) -> None:
    expected = model.get_model_object("latent_format").latent_channels
    if samples.ndim < 2 or samples.shape[1] != expected:
        got = samples.shape[1] if samples.ndim >= 2 else "no"
        raise ValueError(
            f"{node}: input '{input_name}' has {got} latent channels but the model expects {expected}. "
            "Encode the image with the VAE that belongs to this model (the same checkpoint's VAE output) "
            "and connect the same MODEL to every SDEdit node.")
