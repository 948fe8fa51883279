"""Build a small *random-weight* Stable Diffusion 1.5 checkpoint for tests and demos.

No real weights can be downloaded in CI, but we still want to drive ComfyUI's real
``CheckpointLoaderSimple`` (``comfy.sd.load_checkpoint_guess_config``) end to end.
This module writes a single-file ``.safetensors`` in the original SD1.5 layout:

* ``model.diffusion_model.*``                      - a cut-down SD1.5 UNet (~107 M params:
  two levels instead of four, one res block per level), still detected as SD1.5
  because detection only checks ``context_dim=768``, ``model_channels=320``, conv
  (not linear) transformer projections, no ADM input, no temporal layers;
* ``cond_stage_model.transformer.text_model.*``    - full-size CLIP-L text model (~123 M);
* ``first_stage_model.*``                          - full-size SD VAE (~84 M).

All tensors are fp16 (~630 MB file) and drawn from a seeded ``torch.Generator``, so
the file is byte-for-byte reproducible. Pictures made with it are noise.

Key names and shapes come from instantiating ComfyUI's own modules on the ``meta``
device (no memory, no init), so they always match what the installed ComfyUI expects.

Usage: ``harness.checkpoint.ensure_checkpoint()`` after ``harness.setup_host()`` (``comfy`` is imported
lazily, inside the functions: ComfyUI must be on ``sys.path`` with its CPU flag set first). From a shell::

    python -m harness.checkpoint [--out PATH] [--seed N]     (COMFYUI_PATH: the ComfyUI checkout)
"""

import argparse
import json
import math
import os
import pathlib

import torch
from safetensors.torch import save_file

# Bump when the architecture, init scheme or layout changes: the cache key is the file name.
FORMAT_VERSION = 1
FILE_NAME = f"tiny-sd15-random-v{FORMAT_VERSION}.safetensors"
DTYPE = torch.float16

# What comfy.model_detection.detect_unet_config() will read back from the file, plus
# SD15.unet_extra_config (num_heads 8). Keep the SD15-matching keys exactly as in
# comfy.supported_models.SD15.unet_config or detection picks another model class.
UNET_CONFIG = dict(
    image_size=32,
    in_channels=4,
    out_channels=4,
    model_channels=320,
    channel_mult=[1, 2],
    num_res_blocks=[1, 1],
    transformer_depth=[1, 1],               # one transformer block in every input res block
    transformer_depth_output=[1, 1, 1, 1],  # ...in every output res block (2 per level)
    transformer_depth_middle=1,
    context_dim=768,
    use_spatial_transformer=True,
    use_linear_in_transformer=False,        # SD1.5 uses 1x1 conv proj_in/proj_out
    legacy=False,
    num_heads=8,
    num_head_channels=-1,
    adm_in_channels=None,
    use_temporal_resblock=False,
    use_temporal_attention=False,
    use_checkpoint=False,
)

# comfy.sd.VAE's default SD1.x/SD2.x ddconfig (the branch real SD1.5 files hit).
VAE_DDCONFIG = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3,
                'ch': 128, 'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}
VAE_EMBED_DIM = 4


def _require_comfy():
    try:
        import comfy.ops  # noqa: F401
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "ComfyUI is not importable, so the tiny checkpoint cannot be built. Put the ComfyUI "
            "source on sys.path first (harness.setup_host(); set COMFYUI_PATH, or run scripts/setup.sh). "
            f"Original error: {e}") from e


def _meta_modules():
    """(file prefix, module, keys to skip) for the three parts, built on the meta device."""
    _require_comfy()
    import comfy.ops
    from comfy.clip_model import CLIPTextModel
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    with open(os.path.join(os.path.dirname(comfy.ops.__file__), "sd1_clip_config.json")) as f:
        clip_config = json.load(f)

    # meta device: shapes only, no allocation, and nothing of ComfyUI's (deliberately
    # uninitialised, see comfy.ops.disable_weight_init) parameter values is ever used.
    with torch.device("meta"):
        unet = UNetModel(**UNET_CONFIG, dtype=DTYPE, device="meta")
        vae = AutoencoderKL(ddconfig=VAE_DDCONFIG, embed_dim=VAE_EMBED_DIM)
        clip = CLIPTextModel(clip_config, DTYPE, "meta", comfy.ops.manual_cast)

    # Real SD1.5 files have no CLIP text_projection (ComfyUI's SD1 checkpoint CLIP returns the
    # unprojected pooled output and only logs it as missing at debug level). Saving it would
    # even break loading: SD15.process_clip_state_dict moves every non-"text_model." key under
    # "text_model.", turning it into an unexpected key.
    return [
        ("model.diffusion_model.", unet, set()),
        ("cond_stage_model.transformer.", clip, {"text_projection.weight"}),
        ("first_stage_model.", vae, set()),
    ]


def _init_tensor(module, pname, shape, gen):
    """Fresh fp32 values for parameter `pname` of `module`, chosen by layer type.

    Conv/linear weights get std 1/sqrt(fan_in) so activations keep roughly unit scale through
    the (norm-heavy) networks: outputs are finite and not degenerate. Unknown layer types
    raise, so a ComfyUI change that adds one is noticed instead of silently mis-initialised.
    """
    nn = torch.nn
    if isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
        return torch.ones(shape) if pname == "weight" else torch.zeros(shape)
    if isinstance(module, nn.Embedding):
        return torch.empty(shape).normal_(0.0, 0.02, generator=gen)
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if pname == "bias":
            return torch.zeros(shape)
        fan_in = math.prod(shape[1:])
        return torch.empty(shape).normal_(0.0, fan_in ** -0.5, generator=gen)
    raise TypeError(f"don't know how to initialise {type(module).__name__}.{pname} {tuple(shape)}")


def random_state_dict(seed=0):
    """The full checkpoint state dict (original SD1.5 key layout, fp16, CPU)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for prefix, model, skip in _meta_modules():
        owners = {}  # key -> (owning module, local param name)
        for mname, mod in model.named_modules():
            for pname, _ in mod.named_parameters(recurse=False):
                owners[f"{mname}.{pname}" if mname else pname] = (mod, pname)
        sd = model.state_dict()
        # Every entry must be a parameter we know how to make; a buffer would be left unset.
        extra = set(sd) - set(owners)
        if extra:
            raise RuntimeError(f"unexpected non-parameter state in {prefix}: {sorted(extra)[:5]}")
        # Sorted order: the generator stream (hence the file) doesn't depend on module order.
        for key in sorted(sd):
            if key in skip:
                continue
            mod, pname = owners[key]
            out[prefix + key] = _init_tensor(mod, pname, sd[key].shape, gen).to(DTYPE)
    return out


def build_checkpoint(path, seed=0):
    """Write the random checkpoint to `path` atomically and return it as a Path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = random_state_dict(seed)
    # Temp file in the same folder + os.replace: readers never see a half-written file,
    # and concurrent builders just race to replace it with identical bytes.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # A single metadata entry on purpose: safetensors writes the metadata map in hash order,
        # so several keys would make the bytes (not the tensors) differ from run to run.
        save_file(sd, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, 0o644)  # safetensors creates 0600; let e.g. a ComfyUI run as another user read it
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def default_cache_dir():
    return pathlib.Path(os.environ.get("SDEDIT_CACHE") or pathlib.Path.home() / ".cache" / "comfyui-sdedit")


def ensure_checkpoint(cache_dir=None):
    """Path of the cached checkpoint (seed 0), building it only if it is missing."""
    path = pathlib.Path(cache_dir or default_cache_dir()) / FILE_NAME
    if not path.is_file():
        build_checkpoint(path)
    return path


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help=f"output file (default: <cache dir>/{FILE_NAME}, built only if missing)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (only with --out)")
    args = parser.parse_args(argv)

    from harness.host import setup_host
    setup_host()

    path = build_checkpoint(args.out, args.seed) if args.out else ensure_checkpoint()
    print(path)


if __name__ == "__main__":
    _main()
