"""Checks on the nodes' inputs. Each returns None when the input is fine, else one message that names the
node, the input and the fix; `first_problem` turns them into what the host's `validate_inputs` expects
(True or the message) and `refuse` into a ValueError at run time. No UI, no model loading."""
import math

import torch


def first_problem(*messages: str | None) -> bool | str:
    """For `validate_inputs`: True, or the first message (the host shows it on the node, nothing runs)."""
    return next((m for m in messages if m), True)


def refuse(*messages: str | None) -> None:
    """At run time: raise the first message as a ValueError (the server reports it in /history)."""
    problem = first_problem(*messages)
    if problem is not True:
        raise ValueError(problem)


def number_in_range(node: str, name: str, value, low: float, high: float, fix: str) -> str | None:
    """The host checks min/max itself but lets NaN through (every comparison with NaN is false);
    an input listed in `validate_inputs` skips the host's check, so this one does both.
    None (a linked input, known only at run time) passes."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and math.isnan(value):
        return f"{node}: input '{name}' is NaN (not a number). Fix: {fix}"
    if value < low:
        return f"{node}: input '{name}' is {value}, smaller than min of {low}. Fix: {fix}"
    if value > high:
        return f"{node}: input '{name}' is {value}, bigger than max of {high}. Fix: {fix}"
    return None


def choice(node: str, name: str, value, options, what: str) -> str | None:
    """The host (0.3.64) checks the options of its own combos but not of a V3 node's: a hand-edited or
    outdated API workflow would otherwise fail deep inside the run."""
    options = list(options)
    if value is None or value in options:
        return None
    shown = ", ".join(map(str, options[:12])) + (", ..." if len(options) > 12 else "")
    return (f"{node}: input '{name}' is {value!r}, which is not one of {what}. "
            f"Fix: pick one of {len(options)}: {shown}.")


def strength(node: str, value) -> str | None:
    return number_in_range(node, "strength", value, 0.0, 1.0,
                           "set a strength from 0 (keep the image) to 1 (ignore it), e.g. 0.6.")


def cfg(node: str, value) -> str | None:
    return number_in_range(node, "cfg", value, 0.0, 100.0,
                           "set a guidance scale from 0 to 100; 1 ignores the negative prompt, 5-8 is usual.")


def latent(node: str, name: str, latent_dict: dict) -> str | None:
    """A LATENT that can be noised or denoised: finite values, one batch_index entry per latent."""
    samples = latent_dict["samples"]
    return (batch_index_fits(node, name, latent_dict) or non_empty(node, name, samples) or
            finite(node, name, samples, "check the nodes before this one (e.g. a latent multiplied past the "
                                        "float range, or a VAE run in fp16 that overflowed)."))


def image(node: str, name: str, pixels: torch.Tensor) -> str | None:
    return non_empty(node, name, pixels) or finite(
        node, name, pixels, "check the node that made the image; pictures loaded from files are always finite, "
                            "so a maths or mask node before this one produced NaN or infinity.")


def non_empty(node: str, name: str, tensor: torch.Tensor) -> str | None:
    if tensor.ndim == 0 or tensor.shape[0] == 0 or tensor.numel() == 0:
        return (f"{node}: input '{name}' is empty (shape {tuple(tensor.shape)}): there is no picture to work on. "
                "Fix: check the node that made it (e.g. a batch or crop node that selected nothing).")
    return None


def finite(node: str, name: str, tensor: torch.Tensor, fix: str) -> str | None:
    """NaN or infinite values go through every VAE and U-Net layer and come out as a black or noise picture."""
    # A float64 sum is NaN/inf exactly when an element is, without a tensor-sized temporary.
    if math.isfinite(float(tensor.sum(dtype=torch.float64))):
        return None
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return (f"{node}: input '{name}' holds {nan} NaN and {inf} infinite values out of {tensor.numel()}. "
            f"Fix: {fix}")


def batch_index_fits(node: str, name: str, latent: dict) -> str | None:
    """The host draws one noise per entry of `batch_index`; a list that does not match the batch
    (a host latent node broadcast the batch but kept the list) cannot give every image its noise."""
    batch_index = latent.get("batch_index")
    batch = latent["samples"].shape[0]
    if batch_index is None or len(batch_index) == batch:
        return None
    return (f"{node}: input '{name}' holds {batch} latents but its batch_index lists {len(batch_index)} "
            f"({list(batch_index)[:8]}): a node before this one changed the batch without updating it. "
            "Fix: put 'Latent Batch Seed Behavior' (random) before this node, or build the batch with "
            "Latent From Batch / Repeat Latent Batch / Latent Batch.")


def vae_fits_latent(node: str, name: str, samples: torch.Tensor, vae) -> str | None:
    expected = getattr(vae, "latent_channels", None)
    if expected is None or samples.ndim < 2 or samples.shape[1] == expected:
        return None
    return (f"{node}: input '{name}' has {samples.shape[1]} latent channels but this VAE decodes {expected}. "
            "Fix: connect the VAE of the checkpoint whose model made the latent (the same one given to "
            "SDEdit 1 · Encode).")


def noise_kind(model_sampling) -> str:
    """How a model adds noise: the host class whose noise_scaling it uses (EPS also covers v-prediction,
    CONST is flow matching). Latents noised one way cannot be denoised the other way."""
    return type(model_sampling).noise_scaling.__qualname__.split(".")[0]


def freenoise(model) -> tuple:
    """How the model's context windows shuffle the sampler's noise along the frames with FreeNoise on (the host's
    Context Windows nodes, `freenoise`, ComfyUI 0.4.0 on): (dim, context_length, context_overlap), the arguments
    of the host's comfy.context_windows.apply_freenoise; () where they do not."""
    handler = model.model_options.get("context_handler")
    if not getattr(handler, "freenoise", False):
        return ()
    return handler.dim, handler.context_length, handler.context_overlap


def same_freenoise(node: str, name: str, made_with: tuple, model) -> str | None:
    """The host shuffles the noise its sampler starts from where the model has FreeNoise on: Add Noise must have
    noised with the shuffle the denoising model's sampler applies, or the run starts from other noise."""
    used = freenoise(model)
    if made_with == used:
        return None
    said = {(): "no FreeNoise shuffle"}
    made, uses = (said.get(f) or f"FreeNoise's shuffle for context windows of {f[1]} latent frames overlapping by "
                  f"{f[2]}" for f in (made_with, used))
    return (f"{node}: input '{name}' was noised with {made}, but this model's sampler applies {uses} (the host's "
            "Context Windows node, input 'freenoise'). Fix: connect the same MODEL, after the Context Windows node, "
            "to SDEdit 2 · Add Noise and SDEdit 3 · Denoise.")


def same_noise_kind(node: str, name: str, made_with: str, model_sampling) -> str | None:
    used = noise_kind(model_sampling)
    if not made_with or made_with == used:
        return None
    return (f"{node}: input '{name}' was noised by a model that adds noise the {made_with} way, but this "
            f"model denoises the {used} way (e.g. one of them is patched by ModelSamplingSD3/Flux and the "
            "other is not). Fix: connect the same MODEL to SDEdit 2 · Add Noise and SDEdit 3 · Denoise.")
