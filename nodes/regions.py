"""Editing only the masked parts of a big picture at the model's own resolution (Encode's crop_to_mask):
find the mask's separate regions, grow each by its context, merge those that then overlap, give every crop
one working size, and cut, scale and stitch back. Pure maths: no node or UI concerns.

Rules, in order:
1. Regions are the mask's connected parts (pixels above 0), found on the grid of the VAE's cells (LATENT_CELL_PX):
   parts closer than a cell are one region.
2. Each region's bounding box is scaled by `factor` about its centre, then grown by `padding` pixels on
   every side: the context the model sees around the edit.
3. Boxes that overlap are replaced by the box around both, until none overlap: overlapping crops would edit
   the same pixels twice.
4. One working size for every crop, so all go through the model in one batch: the long side is `size`, the
   short side follows the largest region's aspect, both multiples of the VAE's factor. Every box is widened
   (never cut) to that aspect about its centre, moved inside the picture where it fits, and else centred
   on it (the part outside is the picture's edge, replicated, and never stitched back).
5. Each crop edits only its own regions' mask (`own_mask`), so a widened box that covers another region's
   pixels leaves them as they are; stitching writes a crop's pixels only where its own mask is above 0.
"""
from dataclasses import dataclass

import numpy as np
import scipy.ndimage  # a requirement of ComfyUI itself (its mask nodes use it)
import torch
import torch.nn.functional as F

from .image_size import LATENT_CELL_PX, Geometry


@dataclass(frozen=True)
class Region:
    source: str   # the picture it was cut from (Encode's batch index and the picture's fingerprint)
    index: int    # which region of that picture, in reading order
    top: int      # the crop box in the picture's pixels; it may reach past the picture's edges
    left: int
    height: int
    width: int
    picture_height: int
    picture_width: int

    def geometry(self, work_height: int, work_width: int) -> Geometry:
        """The crop scaled to the working size and back: the size modes' `resize`, on the crop."""
        return Geometry("resize", self.height, self.width, work_height, work_width, 0, 0)

    def window(self) -> tuple[slice, slice, slice, slice]:
        """(picture rows, picture columns, crop rows, crop columns) of the part of the box inside the picture."""
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1 = min(self.top + self.height, self.picture_height)
        x1 = min(self.left + self.width, self.picture_width)
        return (slice(y0, y1), slice(x0, x1), slice(y0 - self.top, y1 - self.top), slice(x0 - self.left, x1 - self.left))


def label_cells(mask: torch.Tensor, cell: int) -> torch.Tensor:
    """(h, w) mask -> (ceil(h/cell), ceil(w/cell)) int grid: 0 where no pixel of the cell is above 0, else
    1..n, one number per 8-connected part, numbered in reading order of their first cell."""
    occupied = F.max_pool2d((mask > 0).float()[None, None], cell, ceil_mode=True)[0, 0] > 0
    labels, _ = scipy.ndimage.label(occupied.numpy(), structure=np.ones((3, 3), dtype=bool))
    return torch.from_numpy(labels.astype(np.int64))


def cell_members(labels: torch.Tensor, parts, cell: int, height: int, width: int) -> torch.Tensor:
    """(height, width) bool: the pixels whose cell belongs to one of `parts`."""
    member = torch.isin(labels, torch.tensor(sorted(parts), dtype=labels.dtype))
    return member.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:height, :width]


def bounding_box(pixels: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of the True pixels of a (h, w) bool tensor."""
    rows, cols = pixels.any(1).nonzero(), pixels.any(0).nonzero()
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def with_context(box, factor: float, padding: int) -> tuple[float, float, float, float]:
    top, left, bottom, right = box
    cy, cx = (top + bottom) / 2, (left + right) / 2
    half_h, half_w = (bottom - top) * factor / 2 + padding, (right - left) * factor / 2 + padding
    return cy - half_h, cx - half_w, cy + half_h, cx + half_w


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def merge_overlapping(boxes: list) -> list:
    """[(box, parts)] -> the same with every overlapping pair replaced by the box around both (rule 3), in
    reading order. Each box absorbs every kept box it overlaps, again after each growth, so the kept boxes
    never overlap one another."""
    kept = []
    for box, parts in boxes:
        while (hit := next((k for k, (other, _) in enumerate(kept) if overlap(box, other)), None)) is not None:
            other, other_parts = kept.pop(hit)
            box = (min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3]))
            parts = parts | other_parts
        kept.append((box, parts))
    return sorted(kept, key=lambda item: (item[0][0], item[0][1]))


def working_size(aspect: float, size: int, factor: int) -> tuple[int, int]:
    """(height, width) with the long side `size` and the short side after `aspect` (width / height), both
    multiples of `factor`."""
    long_side = max(factor, size // factor * factor)
    short = max(factor, round(long_side * min(aspect, 1 / aspect) / factor) * factor)
    return (short, long_side) if aspect >= 1 else (long_side, short)


def fit_box(box, aspect: float, picture_height: int, picture_width: int) -> tuple[int, int, int, int]:
    """A box (floats) -> integer (top, left, height, width): widened to `aspect` about its centre, then moved
    inside the picture where it fits there, else centred on it (rule 4)."""
    top, left, bottom, right = box
    height, width = max(1, round(bottom - top)), max(1, round(right - left))
    if width / height < aspect:
        width = round(height * aspect)
    else:
        height = round(width / aspect)

    def place(start: float, length: int, limit: int) -> int:
        if length >= limit:
            return (limit - length) // 2
        return min(max(round(start), 0), limit - length)

    cy, cx = (top + bottom) / 2, (left + right) / 2
    return place(cy - height / 2, height, picture_height), place(cx - width / 2, width, picture_width), height, width


def plan_regions(mask: torch.Tensor, factor: float, padding: int, cell: int) -> list:
    """[(box with context, the pixels of its own regions (h, w) bool)] for one picture's (h, w) mask, merged
    (rules 1-3), in reading order; [] for an empty mask."""
    labels = label_cells(mask, cell)
    height, width = mask.shape
    edit = mask > 0
    boxes = []
    for part, (rows, cols) in enumerate(scipy.ndimage.find_objects(labels.numpy()), start=1):
        r0, c0, r1, c1 = rows.start, cols.start, rows.stop, cols.stop  # the part's cells; its pixels lie inside
        cells = labels[r0:r1, c0:c1]
        top, left = r0 * cell, c0 * cell
        window = edit[top:r1 * cell, left:c1 * cell]
        window = window & cell_members(cells, [part], cell, *window.shape)
        y0, x0, y1, x1 = bounding_box(window)
        boxes.append((with_context((top + y0, left + x0, top + y1, left + x1), factor, padding), frozenset([part])))
    return [(box, edit & cell_members(labels, parts, cell, height, width))
            for box, parts in merge_overlapping(boxes)]


def regions_of_batch(masks: torch.Tensor, sources: list, factor: float, padding: int, size: int,
                     vae_factor: int, cell: int = LATENT_CELL_PX) -> tuple[tuple[int, int], list]:
    """(b, h, w) masks -> ((work height, work width), per picture [(Region, own mask (h, w))]): rules 1-5.
    A picture with an empty mask gets []."""
    height, width = masks.shape[-2:]
    planned = [plan_regions(m, factor, padding, cell) for m in masks]
    boxes = [box for plan in planned for box, _ in plan]
    if not boxes:
        return (0, 0), [[] for _ in planned]
    top, left, bottom, right = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    work = working_size((right - left) / (bottom - top), size, vae_factor)
    out = []
    for source, plan, m in zip(sources, planned, masks):
        regions = []
        for index, (box, own) in enumerate(plan):
            placed = fit_box(box, work[1] / work[0], height, width)
            regions.append((Region(source, index, *placed, height, width), m * own))
        out.append(regions)
    return work, out


def cut(images: torch.Tensor, region: Region) -> torch.Tensor:
    """(b, h, w, c) pixels or (b, h, w) masks -> the region's crop; outside the picture, pixels are the edge
    replicated and masks 0 (nothing to edit there)."""
    pad = (max(0, -region.left), max(0, region.left + region.width - region.picture_width),
           max(0, -region.top), max(0, region.top + region.height - region.picture_height))
    inside = images[:, max(region.top, 0):region.top + region.height, max(region.left, 0):region.left + region.width]
    if not any(pad):
        return inside
    if images.ndim == 3:
        return F.pad(inside, pad, value=0.0)
    return F.pad(inside.movedim(-1, 1), pad, mode="replicate").movedim(1, -1)


def stitch(picture: torch.Tensor, edited: torch.Tensor, own_mask: torch.Tensor, region: Region) -> torch.Tensor:
    """`picture` (frames, h, w, c) with the region's `edited` crop (frames, crop h, crop w, c) written where
    its own mask (crop h, crop w) is above 0; every other pixel is `picture`'s, bit for bit."""
    rows, cols, crop_rows, crop_cols = region.window()
    out = picture.clone()
    keep = (own_mask[crop_rows, crop_cols] > 0).unsqueeze(-1).to(edited.device)
    out[:, rows, cols] = torch.where(keep, edited[:, crop_rows, crop_cols].to(out.dtype), out[:, rows, cols])
    return out
