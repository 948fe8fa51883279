"""Helpers shared by several test modules (fixtures are in conftest.py): pictures, the SDEdit chain on the
host runtime, the host's own samplers to compare with, and model samplings of two families."""
import comfy.model_sampling as host_ms
import comfyui_version
import folder_paths
import nodes as host_nodes
import torch
from comfy_extras.nodes_custom_sampler import CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode

H, W = 64, 96  # pixels; the latent is 8 x 12
# Tests of host features that older releases lack are defined from this, never skipped (docs/development.md).
HOST_VERSION = tuple(int(p) for p in comfyui_version.__version__.split(".")[:3])


def host_node(cls, *args):
    """One of the host's nodes run as its release defines it: a schema node's `execute` (the V3 API, which the
    host's nodes moved to over 0.3.5x-0.3.6x) or a classic node's FUNCTION; its outputs indexable either way."""
    if hasattr(cls, "define_schema"):
        return cls.execute(*args)
    return getattr(cls(), cls.FUNCTION)(*args)


def picture(kind: int, batch: int = 1, height: int = H, width: int = W) -> torch.Tensor:
    """A deterministic IMAGE (batch, height, width, 3) in [0, 1]; different kinds are different pictures."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    channels = [(x + kind * y) % 1, (y * (kind + 1) + 0 * x) % 1, ((x * y * 4) + kind / 3) % 1]
    return torch.stack(channels, dim=-1).unsqueeze(0).repeat(batch, 1, 1, 1)


def counting(model):
    """A clone of `model` that counts U-Net calls and the batch size of each."""
    calls = []
    patched = model.clone()

    def wrapper(apply_model, args):
        calls.append(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    return patched, calls


def cancelled(run, model, at_call: int) -> list:
    """Runs `run(patched)` with a clone of `model` whose U-Net call number `at_call` presses Cancel (the host's
    interrupt flag); asserts the run stops with the host's InterruptProcessingException. The U-Net calls made."""
    import comfy.model_management
    import pytest
    calls = []
    patched = model.clone()

    def wrapper(apply_model, args):
        calls.append(1)
        if len(calls) == at_call:
            comfy.model_management.interrupt_current_processing(True)  # the user presses Cancel
        return apply_model(args["input"], args["timestep"], **args["c"])
    patched.set_model_unet_function_wrapper(wrapper)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run(patched)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    return calls


def sdedit(model, conds, latent, strength, seed=7, steps=10, cfg=7.0, sampler_name="euler",
           scheduler="normal", step_mode="proportional"):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditDenoise.execute(model, conds[0], conds[1], noisy, steps, cfg, sampler_name, scheduler, step_mode)[0]


def host_custom_advanced(model, conds, latent, sigmas, seed, cfg, sampler_name):
    """The host's SamplerCustomAdvanced on the clean latent, as a user would wire it."""
    noise = RandomNoise().get_noise(seed)[0]
    guider = CFGGuider().get_guider(model, conds[0], conds[1], cfg)[0]
    sampler = KSamplerSelect().get_sampler(sampler_name)[0]
    return SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)[0]


# --- the editing chain (masks, repeats, sizes): three steps run --------------------------------------------

STEPS, STRENGTH, SEED = 5, 0.6, 5


def left_keep_mask(keep_columns=48, batch=1):
    """0 (keep) on the left `keep_columns` pixels, 1 (edit) on the right: block-aligned to the latent."""
    mask = torch.ones(batch, H, W)
    mask[:, :, :keep_columns] = 0.0
    return mask


def denoise(model, conds, latent, strength=STRENGTH, seed=SEED, steps=STEPS, sampler_name="euler"):
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditDenoise.execute(model, *conds, noisy, steps, 5.0, sampler_name, "normal", "proportional")[0]


def chain(model, conds, vae, image, **encode):
    latent = SDEditEncode.execute(image, vae, **encode)[0]
    out = denoise(model, conds, latent)
    return latent, out, SDEditDecode.execute(out, vae)[0]


# --- model samplings -----------------------------------------------------------------------------------

def eps_sampling():  # SD1.5's: discrete, linear betas 0.00085..0.012
    return type("EpsSampling", (host_ms.ModelSamplingDiscrete, host_ms.EPS), {})()


def flow_sampling(shift=3.0):  # SD3-style rectified flow, what ModelSamplingSD3 installs
    ms = type("FlowSampling", (host_ms.ModelSamplingDiscreteFlow, host_ms.CONST), {})()
    ms.set_parameters(shift=shift)
    return ms


def pack_folder(python_module: str) -> str:
    """The pack's folder as the frontend derives it from a node's python_module (frontend 1.2x-1.3x:
    extractCustomNodeName splits on "." and drops an "@version" suffix)."""
    parts = python_module.split(".")
    assert parts[0] == "custom_nodes" and len(parts) >= 2, python_module
    return parts[1].split("@")[0]


# --- other model families (harness/families.py) through the host's own loaders -----------------------------

def load_family(files, seed, pooled=None, context=4096, extra=None):
    """(model, vae, conds) from the (diffusion model, VAE) files, through the host's own loaders; conds: context
    [1, 8, `context`] and a pooled vector of `pooled` values (None where the family has none, as the host's
    CLIPTextEncode gives it: 0.4.0 and 0.5.1 read the key for Z-Image), seeded, plus the `extra` keys (SDXL's
    sizes, Flux's guidance)."""
    unet, vae = files
    for kind, path in (("diffusion_models", unet), ("vae", vae)):
        folder_paths.add_model_folder_path(kind, str(path.parent))
    model = host_nodes.UNETLoader().load_unet(unet.name, "default")[0]
    vae_model = host_nodes.VAELoader().load_vae(vae.name)[0]
    g = torch.Generator().manual_seed(seed)

    def cond():
        tokens = torch.randn(1, 8, context, generator=g)
        options = {"pooled_output": None if pooled is None else torch.randn(1, pooled, generator=g)}
        return [[tokens, {**options, **(extra or {})}]]
    return model, vae_model, (cond(), cond())


def video(frames, kind=1):
    return torch.cat([picture(kind + f, height=32, width=48) for f in range(frames)])
