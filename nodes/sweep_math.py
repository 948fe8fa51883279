"""The strength sweep's arithmetic, apart from any UI: parsing the strength list, the faithfulness
metrics and the grid layout.

Images here are the host's IMAGE tensors: (batch, height, width, channels), floats in [0, 1].
"""
import math
import re

import torch

MAX_STRENGTHS = 64  # a grid of more tiles is unreadable; a typo such as "0.1 0.2 ... x100" is caught
MAX_COLUMNS = 4


def parse_strengths(text: str) -> list[float]:
    """"0.2, 0.4 0.6;0.8" -> [0.2, 0.4, 0.6, 0.8]: numbers in [0, 1], in the order given.

    Raises ValueError with a message that names the offending item; the node adds its own name.
    """
    items = [item for item in re.split(r"[,;\s]+", text.strip()) if item]
    if not items:
        raise ValueError("is empty; give strengths between 0 and 1 separated by commas, e.g. \"0.2, 0.4, 0.6, 0.8\".")
    if len(items) > MAX_STRENGTHS:
        raise ValueError(f"has {len(items)} strengths; at most {MAX_STRENGTHS} fit in one grid.")
    values = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"has '{item}', which is not a number; give strengths between 0 and 1 separated "
                             "by commas, e.g. \"0.2, 0.4, 0.6, 0.8\".") from None
        if not 0.0 <= value <= 1.0:  # also rejects nan
            raise ValueError(f"has {item}, outside 0..1; strength 0 keeps the image, 1 ignores it.")
        values.append(value)
    return values


def centre_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre height x width of `image`, cut as the host's VAE encode cuts to its multiple."""
    top = (image.shape[1] - height) // 2
    left = (image.shape[2] - width) // 2
    return image[:, top:top + height, left:left + width]


def squared_and_absolute_error(result: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """Mean squared and mean absolute difference on the 0..255 scale, over every pixel and RGB channel
    (alpha ignored), in float64 on the unrounded values."""
    diff = (result[..., :3].double() - reference[..., :3].double()) * 255.0
    return float(diff.square().mean()), float(diff.abs().mean())


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit peak 255: 10 log10(255² / MSE); inf when identical."""
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)


def grid_shape(count: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) for `count` tiles: one row up to max_columns, then rows as evenly filled as can be."""
    rows = math.ceil(count / max_columns)
    return rows, math.ceil(count / rows)


def tile_origins(count: int, tile_height: int, tile_width: int, band: int, gap: int
                 ) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The grid's (height, width) and each tile's top-left (y, x) in reading order.

    Each cell is a label band of `band` rows above its tile; cells are `gap` pixels apart and from the edge.
    """
    rows, columns = grid_shape(count)
    cell_height, cell_width = band + tile_height, tile_width
    size = (gap + rows * (cell_height + gap), gap + columns * (cell_width + gap))
    origins = [(gap + (i // columns) * (cell_height + gap) + band, gap + (i % columns) * (cell_width + gap))
               for i in range(count)]
    return size, origins


def format_strength(strength: float) -> str:
    return f"{strength:g}"


def markdown_table(rows: list[tuple[float, int, float, float]]) -> str:
    """(strength, steps run, PSNR dB, MAD) rows as a Markdown table, one line per strength."""
    lines = ["| strength | steps | PSNR (dB) | MAD (0-255) |", "|---:|---:|---:|---:|"]
    for strength, steps, db, mad in rows:
        lines.append(f"| {format_strength(strength)} | {steps} | {db:.2f} | {mad:.2f} |")
    return "\n".join(lines)
