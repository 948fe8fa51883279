"""What travels with each picture of a LATENT batch from Encode to Decode: one frozen record per picture.

A record is keyed by the content of the latent row it belongs to (`fingerprint`), not by its position:
the host's batch nodes (Repeat Latent Batch, Latent From Batch, Latent Batch, Rebatch Latents) copy rows
bit for bit but move, repeat or drop what else the LATENT dict carries, so each SDEdit node finds every
row's record again by its content: first among the records the dict carries, then among every record
still alive in this process (`_alive`, weak: a record lives exactly as long as some node output that
carries it, e.g. in the host's cache). A row no record matches (a latent node changed its values) is
`None`; the nodes say by name what they cannot follow (`unattributed`).
"""
import dataclasses
import hashlib
import weakref
from dataclasses import dataclass

import torch

from .image_size import Geometry
from .regions import Region

KEY = "sdedit_pictures"

_alive: "weakref.WeakValueDictionary[str, Picture]" = weakref.WeakValueDictionary()


@dataclass(frozen=True, eq=False)
class Picture:
    row: str                                  # fingerprint of the latent row this record describes
    clean: torch.Tensor                       # the ORIGINAL clean latent (c, ...): the keep region's source
    pixels: torch.Tensor | None = None        # the input picture (h, w, 3) at its own size; None: not from Encode
    mask: torch.Tensor | None = None          # the feathered edit mask (h, w) at the input's size
    working_mask: torch.Tensor | None = None  # (1, h', w'): the mask in the frame the VAE saw (Encode's noise_mask)
    geometry: Geometry | None = None          # how the picture was brought to the VAE's multiple
    sigma: float | None = None                # the noise level Add Noise brought the row to; None: not noisy
    strength: float | None = None             # the strength that chose it (proportional step counts need it)
    seed: int | None = None                   # ancestral and SDE samplers draw their fresh noise from it
    noise_kind: str = ""                      # how the model added the noise (checks.noise_kind)
    noise: torch.Tensor | None = None         # the noise Add Noise drew for this row: the keep region's noise
    start: torch.Tensor | None = None         # the latent Add Noise noised (a repeat's: the last result), whose
                                              # grey parts a strength map re-noises to their own level
    region: Region | None = None              # crop_to_mask: where this row's crop lies in the whole picture
    whole: torch.Tensor | None = None         # crop_to_mask: the whole picture (1, h, w, 3) it is stitched into
    masked_content: str = "original"          # Encode's masked_content (nodes/masked_content.py), which Add
                                              # Noise applies to a clean row; after Denoise: "original"

    @property
    def level(self) -> tuple:
        """What a sampler run needs to be the same for every picture in it."""
        return self.sigma, self.strength, self.seed, self.noise_kind


def fingerprint(row: torch.Tensor) -> str:
    """The exact content of one latent row (values, shape, dtype): equal only for bit-identical rows."""
    data = row.detach().to("cpu").contiguous()
    digest = hashlib.blake2b(data.view(-1).view(torch.uint8).numpy().tobytes(), digest_size=16)
    digest.update(f"{tuple(data.shape)}{data.dtype}".encode())
    return digest.hexdigest()


def attach(latent: dict, samples: torch.Tensor, records) -> dict:
    """A copy of `latent` with `samples` and one record per row, each re-keyed to its row's content."""
    out = latent.copy()
    out["samples"] = samples
    keyed = tuple(dataclasses.replace(r, row=fingerprint(samples[i])) for i, r in enumerate(records))
    for record in keyed:
        _alive[record.row] = record
    out[KEY] = keyed
    return out


def strip(latent: dict) -> dict:
    out = latent.copy()
    out.pop(KEY, None)
    return out


def carried(latent: dict) -> tuple:
    return latent.get(KEY, ())


def attribute(latent: dict) -> list:
    """Each row's record, or None where no record matches its content."""
    samples, records = latent["samples"], carried(latent)
    rows = [fingerprint(samples[i]) for i in range(samples.shape[0])]
    if records and all(r == records[i % len(records)].row for i, r in enumerate(rows)):
        return [records[i % len(records)] for i in range(len(rows))]  # as made, or repeated (Repeat Latent Batch)
    by_row = {}
    for record in records:
        by_row.setdefault(record.row, record)
    return [by_row.get(r) or _alive.get(r) for r in rows]


def mask_rows(mask: torch.Tensor) -> list:
    """A noise mask's rows, each (1, 1, h, w): one per picture, or per frame of a video."""
    rows = mask.reshape(-1, 1, *mask.shape[-2:])
    return [rows[i:i + 1] for i in range(rows.shape[0])]


def host_mask(latent: dict, records) -> torch.Tensor | None:
    """The latent's noise_mask where a host node (Set Latent Noise Mask, ...) set it since Encode, else None:
    it has a row that is none of the pictures' own Encode masks."""
    noise_mask = latent.get("noise_mask")
    if noise_mask is None:
        return None
    ours = {fingerprint(row) for r in list(records) + list(carried(latent))
            if r is not None and r.working_mask is not None for row in mask_rows(r.working_mask)}
    if all(fingerprint(row) in ours for row in mask_rows(noise_mask)):
        return None
    return noise_mask


def unattributed(node: str, input_name: str, records, hidden, why: str, fix: str) -> str | None:
    """The message for rows no record matches, naming them and the host nodes in between (from the prompt
    the server runs: `hidden` is the node's hidden inputs); None where every row has its record."""
    missing = [i + 1 for i, r in enumerate(records) if r is None]
    if not missing:
        return None
    names = nodes_between(getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None), input_name)
    which = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
    many = len(missing) > 1
    return (f"{node}: picture{'s' if many else ''} {which} of the {len(records)} in input '{input_name}' "
            f"{'are' if many else 'is'} not the latent an SDEdit node made ({names} changed "
            f"{'their' if many else 'its'} values), so {why}. Fix: {fix}")


def nodes_between(prompt, node_id, input_name: str) -> str:
    """The host nodes between `input_name` of node `node_id` and the SDEdit nodes upstream of it, as
    "'LatentUpscaleBy' (#9)", from the prompt the server runs; a general phrase where it is not known."""
    general = "a node between the SDEdit nodes"
    if not isinstance(prompt, dict) or str(node_id) not in prompt:
        return general
    found, leads_to_sdedit = [], {}

    def reaches(nid) -> bool:  # does `nid` have an SDEdit node upstream (or is one)?
        if nid in leads_to_sdedit:
            return leads_to_sdedit[nid]
        leads_to_sdedit[nid] = False
        node = prompt.get(nid, {})
        if str(node.get("class_type", "")).startswith("SDEdit"):
            leads_to_sdedit[nid] = True
            return True
        hit = any(reaches(str(v[0])) for v in links(node))
        leads_to_sdedit[nid] = hit
        if hit:
            found.append(f"'{node.get('class_type')}' (#{nid})")
        return hit

    def links(node):
        return [v for v in node.get("inputs", {}).values() if isinstance(v, list) and len(v) == 2]

    start = prompt[str(node_id)].get("inputs", {}).get(input_name)
    if isinstance(start, list) and len(start) == 2:
        reaches(str(start[0]))
    return ", ".join(reversed(found)) or general


def from_encode(samples: torch.Tensor, pixels: torch.Tensor, mask, working_mask, geometry) -> list:
    """One record per latent row made by Encode. A row is one picture, or all frames of a video (a video
    VAE encodes N frames to one row): the row's frames, mask and noise-mask rows go with it."""
    rows = samples.shape[0]
    per_row = pixels.shape[0] // rows if pixels.shape[0] % rows == 0 else None

    def part(tensor, i):  # the rows of a per-frame tensor that belong to latent row i; one broadcasts
        if tensor is None or per_row is None:
            return None
        if tensor.shape[0] == pixels.shape[0]:
            return tensor[i * per_row:(i + 1) * per_row]
        return tensor.expand(per_row, *tensor.shape[1:]) if tensor.shape[0] == 1 else None

    def working(i):  # a video's noise mask may have more frames than the video: Encode padded it in time
        padded = working_mask is not None and rows == 1 and working_mask.shape[0] not in (1, pixels.shape[0])
        return working_mask if padded else part(working_mask, i)

    return [Picture(row="", clean=samples[i], pixels=part(pixels, i), mask=part(mask, i),
                    working_mask=working(i), geometry=geometry) for i in range(rows)]


def noisy(record: Picture, sigma: float, strength: float, seed: int, noise_kind: str, noise, start) -> Picture:
    return dataclasses.replace(record, sigma=sigma, strength=strength, seed=seed, noise_kind=noise_kind, noise=noise,
                               start=start)


def denoised(record: Picture) -> Picture:
    return dataclasses.replace(record, sigma=None, strength=None, seed=None, noise_kind="", noise=None, start=None,
                               masked_content="original")  # the masked part is the result now
