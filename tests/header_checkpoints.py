"""Checkpoints of other model families for the step line's schedule, in the layout the host's own loader
detects, written as valid .safetensors files whose tensors are all zeros and never stored (a sparse file):
the canvas' route reads only their headers. The keys and shapes are those of the host's own model class for
the family (built on the meta device from a minimal config), under the checkpoint prefix model.diffusion_model.
"""
import json
import pathlib
import struct

import torch

PREFIX = "model.diffusion_model."
_NAMES = {torch.float16: "F16", torch.float32: "F32", torch.bfloat16: "BF16"}


def _family(name: str):
    """(the host's supported_models config, its unet_config) of a small model of the family."""
    import comfy.supported_models as sm
    if name == "SD3":  # the SD3.5 layout at depth 2 (hidden 128)
        config = dict(sm.SD3.unet_config, in_channels=16, out_channels=16, patch_size=2, depth=2, input_size=None,
                      adm_in_channels=2048, pos_embed_max_size=24, num_patches=576, qk_norm="rms",
                      context_embedder_config={"target": "torch.nn.Linear",
                                               "params": {"in_features": 4096, "out_features": 128}},
                      pos_embed_scaling_factor=None, x_block_self_attn_layers=[])
        return sm.SD3, config
    if name in ("Flux", "FluxSchnell"):  # one double and one single block; the host fixes the width
        config = dict(image_model="flux", in_channels=16, out_channels=16, patch_size=2, vec_in_dim=768,
                      context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1,
                      depth_single_blocks=1, axes_dim=[16, 56, 56], theta=10000, qkv_bias=True,
                      guidance_embed=name == "Flux")
        return getattr(sm, name), config
    raise ValueError(name)


def header_checkpoint(path: pathlib.Path, family: str) -> pathlib.Path:
    config_class, unet_config = _family(family)
    model = config_class(unet_config).get_model({}, device="meta")
    tensors = {PREFIX + k: v for k, v in model.diffusion_model.state_dict().items()}
    header, offset = {}, 0
    for key in sorted(tensors):
        t = tensors[key]
        size = t.numel() * t.element_size()
        header[key] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)  # the zeros are a hole in the file: no disk used
    return path
