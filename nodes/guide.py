"""The guide: what Encode knew about the input, carried inside the LATENT dict to Add Noise, Denoise
and Decode (nodes copy LATENT dicts, so it passes through host nodes and through repeated rounds).

    latent    the ORIGINAL clean latent: the keep region is restored from it in every round
    pixels    the input image (RGB, input size): Decode composites the keep region from it
    mask      the feathered edit mask at the input's size, or None
    geometry  image_size.Geometry as a dict: how the image was brought to the VAE's multiple
    working_mask  the mask Encode put in the host's `noise_mask` (to tell it from one set later)
"""
from .image_size import Geometry

KEY = "sdedit_guide"


def attach(latent_dict: dict, **guide) -> dict:
    out = latent_dict.copy()
    out[KEY] = guide
    return out


def read(latent: dict) -> dict | None:
    return latent.get(KEY)


def geometry(guide: dict | None) -> Geometry | None:
    if guide is None or guide.get("geometry") is None:
        return None
    return Geometry(**guide["geometry"])


def clean_latent(latent: dict):
    """The original clean latent when the guide fits this latent, else None."""
    guide = read(latent)
    if guide is None or guide["latent"].shape != latent["samples"].shape:
        return None
    return guide["latent"]
