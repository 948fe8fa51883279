"""Small random-weight models of other families, in the file layouts the host's own loaders detect:
a diffusion model with bare keys (UNETLoader, models/diffusion_models) and a VAE with bare keys (VAELoader,
models/vae), fp16 safetensors, built once with the host's own model classes and cached beside the SD1.5
test checkpoint. Weights: std 1/sqrt(fan_in) for convolutions and linear layers, biases 0, norm scales 1
(a norm scale of 0 would make the model predict exactly 0), anything else N(0, 0.02).

    sd3: the SD3.5 layout (MMDiT, qk_norm) at depth 2, hidden 128 (~1.9 M parameters), with the 16-channel
         SD3/Flux VAE (the `ae` layout, no quant convs).
    wan: Wan 2.1 text-to-video (5-D latents, flow, shift 8) at dim 128, one block, with the Wan 2.1 VAE
         (its width is fixed by the host, ~127 M parameters; it keeps 1 + 4k frames).
    sdxl: the SDXL UNet (EPS, adm 2816 = pooled 1280 + six size embeddings) with the widths and input
         transformer depths [0, 0, 2, 2, 10, 10] that supported_models.SDXL demands, at channel_mult [1, 1, 1]
         (~160 M parameters), with the 4-channel SD VAE (quant convs; its width is fixed, ~84 M).
    flux: Flux.1 dev (guidance embedding, flow with shift 1.15); hidden 3072 and 24 heads are fixed by the
         host, so one double and one single block (~0.55 G parameters); with the sd3 family's 16-channel VAE
         (the same file).
    sd15_inpaint: an SD1.5 inpainting UNet (9 input channels: the latent, the mask, the masked image's latent),
         the cut-down SD1.5 UNet of harness/checkpoint.py (~107 M), detected by UNETLoader as SD15 with the
         host's inpainting concat channels; with the 4-channel SD VAE (the same file as sdxl's).
    sd2v: an SD2.x v-prediction UNet (context 1024, linear proj_in; the host tells v from the spread of one norm
         bias, set as a trained v model's) at two levels of five res blocks (~76 M), with the 4-channel SD VAE.
    qwen_image: Qwen-Image (flow, shift 1.15); its 3072-wide blocks and 3584-wide text input are fixed by the host,
         so one block (~0.38 G parameters); with the Wan 2.1 VAE (the wan family's file): 5-D latents of one frame.
    z_image: Z-Image (ComfyUI 0.3.77 on; Lumina 2's NextDiT at dim 3840, flow with shift 3), one layer besides the
         four fixed refiner layers (~0.9 G parameters), with the sd3 family's 16-channel VAE.
    sd15_controlnet: a ControlNet of that cut-down SD1.5 UNet (its encoder half and an RGB hint block), for the
         host's ControlNetLoader.
"""
import math
import os
import pathlib

import torch
from safetensors.torch import save_file

from .checkpoint import _require_comfy, default_cache_dir

DTYPE = torch.float16
VAE_16 = {'double_z': True, 'z_channels': 16, 'resolution': 256, 'in_channels': 3, 'out_ch': 3, 'ch': 128,
          'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}


def sd3_config():
    import comfy.supported_models as sm
    return sm.SD3, dict(sm.SD3.unet_config, in_channels=16, out_channels=16, patch_size=2, depth=2, input_size=None,
                        adm_in_channels=2048, pos_embed_max_size=24, num_patches=576, qk_norm="rms",
                        context_embedder_config={"target": "torch.nn.Linear",
                                                 "params": {"in_features": 4096, "out_features": 128}},
                        pos_embed_scaling_factor=None, x_block_self_attn_layers=[])


def random_weights(module: torch.nn.Module, seed: int, skip=()) -> dict:
    """Every state-dict entry of `module` (built on the meta device) with fresh values, in sorted key order."""
    gen = torch.Generator().manual_seed(seed)
    owners = {}
    for mname, mod in module.named_modules():
        for pname, _ in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            owners[f"{mname}.{pname}" if mname else pname] = (mod, pname)
    out = {}
    for key, meta in sorted(module.state_dict().items()):
        if any(key.startswith(s) for s in skip):
            continue
        mod, pname = owners[key]
        shape = meta.shape
        if "norm" in type(mod).__name__.lower():  # scales (weight, or gamma as in Wan's RMS_norm) 1, shifts 0
            value = torch.ones(shape) if pname in ("weight", "gamma", "scale") else torch.zeros(shape)
        elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            value = torch.zeros(shape) if pname == "bias" else \
                torch.empty(shape).normal_(0.0, math.prod(shape[1:]) ** -0.5, generator=gen)
        else:
            value = torch.empty(shape).normal_(0.0, 0.02, generator=gen)
        out[key] = value.to(DTYPE)
    return out


def _save(sd: dict, path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(sd, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _ensure(unet_name: str, vae_name: str, config, vae_module, seeds, vae_skip=(), cache_dir=None, adjust=None):
    """(diffusion model, VAE) files, each built once: the model from its host config (its state dict passed through
    `adjust` where given), the VAE from `vae_module()`."""
    folder = pathlib.Path(cache_dir or default_cache_dir())
    unet, vae = folder / unet_name, folder / vae_name
    _require_comfy()
    if not unet.is_file():
        config_class, unet_config = config()
        model = config_class(unet_config).get_model({}, device="meta")
        sd = random_weights(model.diffusion_model, seeds[0])
        _save(adjust(sd) if adjust else sd, unet)
    if not vae.is_file():
        with torch.device("meta"):
            module = vae_module()
        _save(random_weights(module, seeds[1], skip=vae_skip), vae)
    return unet, vae


# The 16-channel SD3/Flux VAE (no quant convs) and the 4-channel SD VAE (quant convs): file, seed, keys left out.
VAE16_FILE, VAE16_SEED, VAE16_SKIP = "vae16-random-v2.safetensors", 2, ("quant_conv.", "post_quant_conv.")
VAE4_FILE, VAE4_SEED = "vae4-random-v1.safetensors", 6


def vae16():
    from comfy.ldm.models.autoencoder import AutoencoderKL
    return AutoencoderKL(ddconfig=VAE_16, embed_dim=16)


def vae4():
    from comfy.ldm.models.autoencoder import AutoencoderKL

    from .checkpoint import VAE_DDCONFIG, VAE_EMBED_DIM
    return AutoencoderKL(ddconfig=VAE_DDCONFIG, embed_dim=VAE_EMBED_DIM)


def ensure_sd3(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of the small SD3, built once."""
    return _ensure("sd3-tiny-random-v2.safetensors", VAE16_FILE, sd3_config, vae16, (1, VAE16_SEED),
                   vae_skip=VAE16_SKIP, cache_dir=cache_dir)

WAN_VAE = {"dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
           "temperal_downsample": [False, True, True], "dropout": 0.0}  # the host's Wan 2.1 VAE


def wan_config():
    import comfy.supported_models as sm
    return sm.WAN21_T2V, dict(image_model="wan2.1", model_type="t2v", dim=128, out_dim=16, num_heads=1, ffn_dim=256,
                              num_layers=1, patch_size=(1, 2, 2), freq_dim=256, window_size=(-1, -1), qk_norm=True,
                              cross_attn_norm=True, eps=1e-6, in_dim=16)


def ensure_wan(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of the small Wan 2.1 text-to-video model, built once."""
    from comfy.ldm.wan.vae import WanVAE
    return _ensure("wan21-tiny-random-v2.safetensors", "wan21-vae-random-v2.safetensors", wan_config,
                   lambda: WanVAE(**WAN_VAE), (3, 4), cache_dir=cache_dir)


def sdxl_config():
    import comfy.supported_models as sm
    return sm.SDXL, dict(use_checkpoint=False, image_size=32, in_channels=4, out_channels=4, model_channels=320,
                         channel_mult=[1, 1, 1], num_res_blocks=[2, 2, 2], transformer_depth=[0, 0, 2, 2, 10, 10],
                         transformer_depth_middle=1, transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1],
                         context_dim=2048, adm_in_channels=2816, num_classes="sequential", use_spatial_transformer=True,
                         use_linear_in_transformer=True, legacy=False, use_temporal_attention=False,
                         use_temporal_resblock=False)


def ensure_sdxl(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of the small SDXL, built once."""
    return _ensure("sdxl-tiny-random-v1.safetensors", VAE4_FILE, sdxl_config, vae4, (5, VAE4_SEED),
                   cache_dir=cache_dir)


def flux_config():
    import comfy.supported_models as sm
    return sm.Flux, dict(image_model="flux", in_channels=16, out_channels=16, patch_size=2, vec_in_dim=768,
                         context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1,
                         depth_single_blocks=1, axes_dim=[16, 56, 56], theta=10000, qkv_bias=True, guidance_embed=True)


def ensure_flux(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of the small Flux.1 dev, built once; the VAE is the sd3 family's file."""
    return _ensure("flux1-tiny-random-v1.safetensors", VAE16_FILE, flux_config, vae16, (7, VAE16_SEED),
                   vae_skip=VAE16_SKIP, cache_dir=cache_dir)


def sd15_inpaint_config():
    import comfy.supported_models as sm

    from .checkpoint import UNET_CONFIG
    return sm.SD15, dict(UNET_CONFIG, in_channels=9)


def ensure_sd15_inpaint(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of the small SD1.5 inpainting UNet, built once; the VAE is the sdxl family's file."""
    return _ensure("sd15-inpaint-tiny-random-v1.safetensors", VAE4_FILE, sd15_inpaint_config, vae4, (8, VAE4_SEED),
                   cache_dir=cache_dir)


CONTROLNET_FILE, CONTROLNET_SEED = "sd15-controlnet-tiny-random-v1.safetensors", 9


def ensure_sd15_controlnet(cache_dir=None) -> pathlib.Path:
    """A ControlNet for the small SD1.5 UNet (its encoder half, an RGB hint), with bare keys (`zero_convs.0.0.weight`,
    the layout ControlNetLoader detects, models/controlnet), built once. Its zero convolutions are random like every
    other layer (a trained ControlNet's are not 0 either), so the hint changes what the U-Net predicts."""
    from .checkpoint import UNET_CONFIG
    path = pathlib.Path(cache_dir or default_cache_dir()) / CONTROLNET_FILE
    _require_comfy()
    if not path.is_file():
        from comfy.cldm.cldm import ControlNet
        config = {k: v for k, v in UNET_CONFIG.items() if k != "out_channels"}
        with torch.device("meta"):
            module = ControlNet(**config, hint_channels=3, dtype=DTYPE, device="meta")
        _save(random_weights(module, CONTROLNET_SEED), path)
    return path


SD2V_BIAS = "output_blocks.11.1.transformer_blocks.0.norm1.bias"  # SD20.model_type: std > 0.09 means v-prediction


def sd2v_config():
    import comfy.supported_models as sm

    from .checkpoint import UNET_CONFIG
    # SD20 matches context 1024 and linear proj_in; its model_type reads output block 11, so 2 levels x 5 res
    # blocks (12 output blocks, whose depths the host pops from the end); attention only in input block 1 (where
    # detection reads the context width), the middle block and output block 11 (~76 M parameters)
    return sm.SD20, dict(UNET_CONFIG, context_dim=1024, use_linear_in_transformer=True, num_heads=-1,
                         num_head_channels=64, channel_mult=[1, 1], num_res_blocks=[5, 5],
                         transformer_depth=[1] + [0] * 9, transformer_depth_output=[1] + [0] * 11)


def sd2v_bias(sd: dict) -> dict:
    """The bias SD20.model_type reads, at the spread of a trained v-prediction model's."""
    gen = torch.Generator().manual_seed(10)
    return dict(sd, **{SD2V_BIAS: (torch.randn(sd[SD2V_BIAS].shape, generator=gen) * 0.2).to(DTYPE)})


def ensure_sd2v(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of a small SD2.x v-prediction UNet, built once; the VAE is the sdxl family's file."""
    return _ensure("sd2v-tiny-random-v1.safetensors", VAE4_FILE, sd2v_config, vae4, (10, VAE4_SEED),
                   cache_dir=cache_dir, adjust=sd2v_bias)


def qwen_image_config():
    import comfy.supported_models as sm
    # inner dim 3072 (24 heads x 128) and text width 3584 are the host's defaults: one block (~0.4 G parameters)
    return sm.QwenImage, dict(image_model="qwen_image", in_channels=64, num_layers=1)


def ensure_qwen_image(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of a small Qwen-Image, built once; its VAE is Wan 2.1's (the wan family's file)."""
    from comfy.ldm.wan.vae import WanVAE
    return _ensure("qwen-image-tiny-random-v1.safetensors", "wan21-vae-random-v2.safetensors", qwen_image_config,
                   lambda: WanVAE(**WAN_VAE), (11, 4), cache_dir=cache_dir)


def z_image_config():
    import comfy.supported_models as sm
    # what detection sets for dim 3840; the two noise and two context refiner layers are fixed (~0.9 G parameters)
    return sm.ZImage, dict(image_model="lumina2", patch_size=2, in_channels=16, dim=3840, cap_feat_dim=2560,
                           n_layers=1, qk_norm=True, n_heads=30, n_kv_heads=30, axes_dims=[32, 48, 48],
                           axes_lens=[1536, 512, 512], rope_theta=256.0, ffn_dim_multiplier=8.0 / 3.0,
                           z_image_modulation=True, time_scale=1000.0, pad_tokens_multiple=32)


def ensure_z_image(cache_dir=None) -> tuple[pathlib.Path, pathlib.Path]:
    """(diffusion model, VAE) of a small Z-Image (ComfyUI 0.3.77 on), built once; the VAE is the sd3 family's file."""
    return _ensure("z-image-tiny-random-v1.safetensors", VAE16_FILE, z_image_config, vae16, (12, VAE16_SEED),
                   vae_skip=VAE16_SKIP, cache_dir=cache_dir)
