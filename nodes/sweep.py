"""One picture at several strengths, side by side: the realism-faithfulness trade-off of SDEdit made
visible, so a user can pick the strength. Each tile is the four nodes' own chain
(Encode → Add Noise → Denoise → Decode), called through their `execute`; nothing is re-implemented.

A video (an IMAGE batch given with a video VAE such as Wan's, which Encode turns into one video) is swept as
one: the grid is a batch of one grid per frame (a video of grids) and each row of the table is over every
frame together (sweep_math.squared_and_absolute_error over all frames' pixels), not per frame."""
import comfy.utils
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .add_noise import SDEditAddNoise
from .common import CATEGORY, io
from .decode import SDEditDecode
from .denoise import SDEditDenoise
from .widgets import sampling_inputs
from .encode import SDEditEncode
from .sweep_math import (centre_crop, format_strength, markdown_table, parse_strengths, psnr,
                         squared_and_absolute_error, tile_origins)

NODE = "SDEdit · Strength Sweep"
GAP = 4  # pixels between tiles
BACKGROUND = 1.0  # white
INK = 0


def label_font(tile_width: int) -> ImageFont.ImageFont:
    """Pillow's built-in font (no font files, no network), sized to the tile."""
    return ImageFont.load_default(size=max(10, min(32, tile_width // 10)))


def label_band(text: str, width: int, height: int, font: ImageFont.ImageFont) -> torch.Tensor:
    """A white (height, width, 3) strip with `text` centred in black."""
    band = Image.new("L", (width, height), 255)
    ImageDraw.Draw(band).text((width / 2, height / 2), text, font=font, fill=INK, anchor="mm")
    return torch.from_numpy(np.asarray(band, dtype=np.float32) / 255.0).unsqueeze(-1).expand(-1, -1, 3)


def is_video_vae(vae) -> bool:
    """Whether `vae` encodes an IMAGE batch as one video (Wan, Hunyuan, LTXV: 5-D latents), as Encode treats it."""
    return getattr(vae, "latent_dim", 2) == 3


def compose_grids(results: list[torch.Tensor], labels: list[str]) -> torch.Tensor:
    """One grid per frame: `results` are the strengths' IMAGEs (frames, h, w, c), all one shape; IMAGE
    (frames, H, W, 3), frame f the grid of every strength's frame f."""
    return torch.cat([compose_grid([r[f, :, :, :3] for r in results], labels) for f in range(results[0].shape[0])])


def compose_grid(tiles: list[torch.Tensor], labels: list[str]) -> torch.Tensor:
    """Tiles (each (height, width, 3), all one size) under their labels, in a grid: IMAGE (1, H, W, 3)."""
    height, width = tiles[0].shape[:2]
    font = label_font(width)
    band = round(font.size * 1.6) if hasattr(font, "size") else 16
    (grid_h, grid_w), origins = tile_origins(len(tiles), height, width, band, GAP)
    grid = torch.full((grid_h, grid_w, 3), BACKGROUND)
    for tile, text, (y, x) in zip(tiles, labels, origins):
        grid[y - band:y, x:x + width] = label_band(text, width, band, font)
        grid[y:y + height, x:x + width] = tile
    return grid.unsqueeze(0)


class SDEditStrengthSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditStrengthSweep",
            display_name=NODE,
            category=CATEGORY,
            description="Runs image-to-image (Encode → Add Noise → Denoise → Decode) on one picture at several "
                        "strengths with one seed and shows the results in a labelled grid, with a table of how "
                        "faithful each is to the input (PSNR and mean absolute difference). Low strengths stay "
                        "close to the input, high strengths follow the prompt: pick the strength from the grid.",
            inputs=[
                io.Image.Input("image", tooltip="The picture to start from (one image; alpha is ignored). With a "
                                                "video VAE (Wan): a video, its frames as the batch, swept as one."),
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Vae.Input("vae", tooltip="The checkpoint's VAE: encodes the picture and decodes each result."),
                io.Conditioning.Input("positive", tooltip="What the result should show (CLIP Text Encode)."),
                io.Conditioning.Input("negative", tooltip="What the result should avoid."),
                io.String.Input("strengths", default="0.2, 0.4, 0.6, 0.8",
                                tooltip="The strengths to try, between 0 and 1, separated by commas; "
                                        "one tile each, in this order."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="One seed for every strength, so the tiles differ only by strength."),
                *sampling_inputs(),
            ],
            outputs=[
                io.Image.Output("grid", display_name="grid",
                                tooltip="One tile per strength, labelled with it, in the order given "
                                        "(up to four per row). For a video: one grid per frame, as a batch "
                                        "(a video of grids)."),
                io.String.Output("table", display_name="table",
                                 tooltip="A Markdown table: per strength, the steps that ran, PSNR in dB "
                                         "(higher = closer to the input) and the mean absolute difference "
                                         "from the input in 0-255 pixel levels. For a video: over all frames "
                                         "together (averaged over every pixel of every frame), not per frame."),
            ],
        )

    @classmethod
    def execute(cls, image, model, vae, positive, negative, strengths, seed, steps, cfg, sampler_name,
                scheduler, step_mode) -> io.NodeOutput:
        try:
            values = parse_strengths(strengths)
        except ValueError as error:
            raise ValueError(f"{NODE}: input 'strengths' {error}") from None
        if image.shape[0] != 1 and not is_video_vae(vae):
            raise ValueError(f"{NODE}: input 'image' is a batch of {image.shape[0]} pictures; the sweep "
                             "compares strengths on one (or on one video, with a video VAE such as Wan's). "
                             "Pick one with 'Image From Batch'.")
        latent = SDEditEncode.execute(image=image, vae=vae)[0]
        progress = comfy.utils.ProgressBar(len(values))
        tiles, rows = [], []
        for i, strength in enumerate(values):
            noisy = SDEditAddNoise.execute(model=model, latent=latent, strength=strength, seed=seed)[0]
            denoised, trajectory = SDEditDenoise.execute(
                model=model, positive=positive, negative=negative, noisy_latent=noisy, steps=steps, cfg=cfg,
                sampler_name=sampler_name, scheduler=scheduler, step_mode=step_mode).args
            result = SDEditDecode.execute(latent=denoised, vae=vae)[0].to(image.device)
            mse, mad = squared_and_absolute_error(result, centre_crop(image, *result.shape[1:3]))
            steps_run = trajectory["samples"].shape[0] if strength > 0 else 0
            rows.append((strength, steps_run, psnr(mse), mad))
            tiles.append(result)
            progress.update_absolute(i + 1, len(values))
        grid = compose_grids(tiles, [f"strength {format_strength(s)}" for s in values])
        return io.NodeOutput(grid, markdown_table(rows))
