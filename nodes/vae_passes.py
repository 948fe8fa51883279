"""VAE encode/decode that switch to the host's tiled passes for large images.

Below a pixel budget these are exactly the host's `vae.encode` / `vae.decode`. Above it they call
the host's `vae.encode_tiled` / `vae.decode_tiled`, whose memory depends on the tile, not the image,
and which report every tile through `comfy.utils.ProgressBar` — the server's progress hook checks the
interrupt flag there, so Cancel stops a long tiled pass within one tile. Absurd sizes are refused
from the tensor's shape before the VAE allocates anything.
"""

import os

# Why 1024x1024: measured on a CPU with the SD VAE (bench/results/vae.md), the plain decode's peak
# resident memory grows with pixels, ~4 GB above the loaded model per Mpx (+0.25 GB at 256², +1.0 GB
# at 512²), so a plain 2048² decode would need ~16 GB more, while the tiled passes cost what one
# 512-px tile costs (~+1.2 GB: the whole of a 512² decode) at any size. On a CPU the host's out-of-memory fallback never runs (the kernel
# kills the process), so the plain pass is kept only up to a size that fits in a few GB. The host's
# own estimate for the plain pass (vae.memory_used_encode/decode: ~7-9 kB per pixel for the SD VAE,
# about twice the measured cost) lowers the budget further where get_free_memory reports less.
DEFAULT_PIXEL_BUDGET = 1024 * 1024
# Beyond 8192x8192 per image (64 Mpx) the output alone is ~0.8 GB of float32 per image and a tiled
# pass would run for hours on a CPU: refuse with a fix rather than start.
MAX_PIXELS = 8192 * 8192
BUDGET_ENV = "SDEDIT_VAE_PIXEL_BUDGET"

# The host's VAEEncodeTiled/VAEDecodeTiled defaults: 512-px tiles, 64-px overlap (in pixels).
TILE_PIXELS = 512
OVERLAP_PIXELS = 64


def choose_pass(height: int, width: int, budget: int, limit: int = MAX_PIXELS) -> str:
    """'plain' or 'tiled' for one image of height x width pixels; ValueError above `limit`."""
    pixels = height * width
    if pixels > limit:
        raise ValueError(f"{width}x{height} is {pixels / 1e6:.0f} Mpx, above the limit of {limit / 1e6:.0f} Mpx "
                         f"(e.g. 8192x8192)")
    return "plain" if pixels <= budget else "tiled"


def budget_from_memory(bytes_per_pixel: float, free_bytes: float, default: int = DEFAULT_PIXEL_BUDGET) -> int:
    """The pixel budget: `default`, lowered to what the host's memory estimate says fits in free memory."""
    return max(0, min(default, int(free_bytes / max(bytes_per_pixel, 1e-9))))


def _budget(vae, estimate, probe_shape, pixels: int, budget) -> int:
    if budget is None and os.environ.get(BUDGET_ENV):
        budget = int(os.environ[BUDGET_ENV])
    if budget is not None:
        return budget
    import comfy.model_management
    bytes_per_pixel = estimate(probe_shape, vae.vae_dtype) / pixels
    return budget_from_memory(bytes_per_pixel, comfy.model_management.get_free_memory(vae.device))


def _refusal(node: str, input_name: str, error: ValueError, fix: str) -> ValueError:
    return ValueError(f"{node}: input '{input_name}' is too large: {error}. Fix: {fix}")


def encode_pixels(vae, pixels, budget=None, node="SDEdit 1 · Encode", input_name="image"):
    """`vae.encode(pixels)`, tiled above the pixel budget; pixels is (batch, height, width, channels)."""
    height, width = pixels.shape[1], pixels.shape[2]
    if pixels.ndim != 4 or getattr(vae, "latent_dim", 2) != 2:
        return vae.encode(pixels)  # video/audio VAEs: the host's own pass and fallbacks
    try:
        estimate_shape = (1, pixels.shape[-1], height, width)
        which = choose_pass(height, width, _budget(vae, vae.memory_used_encode, estimate_shape, height * width, budget))
    except ValueError as error:
        raise _refusal(node, input_name, error, "scale the image down (e.g. with the Upscale Image node) "
                                                "to at most 8192x8192 pixels before encoding") from None
    if which == "plain":
        return vae.encode(pixels)
    return vae.encode_tiled(pixels, tile_x=TILE_PIXELS, tile_y=TILE_PIXELS, overlap=OVERLAP_PIXELS)


def decode_latent(vae, samples, budget=None, node="SDEdit 4 · Decode", input_name="latent"):
    """`vae.decode(samples)`, tiled above the pixel budget; samples is (batch, channels, h, w)."""
    if samples.ndim != 4 or getattr(vae, "latent_dim", 2) != 2:
        return vae.decode(samples)
    scale = vae.spacial_compression_decode()
    height, width = samples.shape[2] * scale, samples.shape[3] * scale
    try:
        estimate_shape = (1,) + tuple(samples.shape[1:])
        which = choose_pass(height, width, _budget(vae, vae.memory_used_decode, estimate_shape, height * width, budget))
    except ValueError as error:
        raise _refusal(node, input_name, error, "decode a smaller latent (at most 8192x8192 pixels, "
                                                f"{8192 // scale}x{8192 // scale} latent), e.g. crop or "
                                                "downscale the latent first") from None
    if which == "plain":
        return vae.decode(samples)
    tile, overlap = TILE_PIXELS // scale, OVERLAP_PIXELS // scale
    return vae.decode_tiled(samples, tile_x=tile, tile_y=tile, overlap=overlap)
