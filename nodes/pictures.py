"""What travels with each picture of a LATENT batch from Encode to Decode: one frozen record per picture.

A record is keyed by the content of the latent row it belongs to (`fingerprint`), not by its position:
the host's batch nodes (Repeat Latent Batch, Latent From Batch, Latent Batch, Rebatch Latents) copy rows
bit for bit but move, repeat or drop what else the LATENT dict carries, so each SDEdit node finds every
row's record again by its content: first among the records the dict carries, then among every record
still alive in this process (`_alive`, weak: a record lives exactly as long as some node output that
carries it, e.g. in the host's cache; `_alive` forgets it after).

A row no record matches (a latent node changed its values) has one policy, `own_records`, for every node that
reads the records: it is refused, naming it and the host nodes in between (`unattributed`), where it may have a
keep region of its own, which cannot be told; otherwise it is its own clean latent, with what its reader needs
(`Reader.fields`: Denoise the noise level, Decode the geometry) where every record that could describe it agrees.
"""
import dataclasses
import hashlib
import weakref
from dataclasses import dataclass

import comfy.utils
import torch

from . import checks, masking
from .image_size import Geometry, mask_in_working_frame
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
    freenoise: tuple = ()                     # the FreeNoise shuffle Add Noise started from (checks.freenoise)

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


def noisy(record: Picture, sigma: float, strength: float, seed: int, noise_kind: str, noise, start,
          freenoise: tuple = ()) -> Picture:
    return dataclasses.replace(record, sigma=sigma, strength=strength, seed=seed, noise_kind=noise_kind, noise=noise,
                               start=start, freenoise=freenoise)


def denoised(record: Picture) -> Picture:
    return dataclasses.replace(record, sigma=None, strength=None, seed=None, noise_kind="", noise=None, start=None,
                               masked_content="original", freenoise=())  # the masked part is the result now



# --- rows without a record; what Denoise reads: each row's level and keep region ----------------------------

@dataclass(frozen=True)
class Reader:
    """A node that reads the records, and what it needs of a row no record matches (`own_records`)."""
    node: str
    input_name: str
    fields: tuple = ()        # what such a row takes from the records that could describe it, where they all agree
    any_size: bool = False    # those records: of any size (a noise level does not depend on it), else of the row's
    noise_mask: bool = True   # a host noise_mask (Set Latent Noise Mask, ...) is a keep region it may have
    required: bool = False    # refused where those records do not agree (Denoise cannot run without a level)
    keep_region: str = "its keep region cannot be restored"   # why it is refused where it may have one
    unknown: str = ""                                          # why, where those records do not agree
    fix: str = ""


LEVEL = ("sigma", "strength", "seed", "noise_kind", "freenoise")


def own_records(reader: Reader, latent: dict, hidden) -> list:
    """Each row's record (`attribute`); a row no record matches gets one of its own clean latent, as the module
    docstring says. The records that could describe it are those the LATENT carries, of its size unless
    `reader.any_size` (then those with a noise level)."""
    samples = latent["samples"]
    records = attribute(latent)
    if all(r is not None for r in records):
        return records
    scope = [r for r in carried(latent)
             if (r.sigma is not None if reader.any_size else r.clean.shape == samples.shape[1:])]
    masked = any(r.mask is not None for r in scope) or \
        (reader.noise_mask and bool(scope) and latent.get("noise_mask") is not None)
    if masked:
        checks.refuse(unattributed(reader.node, reader.input_name, records, hidden, reader.keep_region, reader.fix))
    values = {tuple(getattr(r, f) for f in reader.fields) for r in scope}
    shared = values.pop() if len(values) == 1 else None
    if shared is None or None in shared:
        if reader.required:
            checks.refuse(unattributed(reader.node, reader.input_name, records, hidden, reader.unknown, reader.fix))
        shared = (None,) * len(reader.fields)
    return [r or Picture(row="", clean=samples[i], **dict(zip(reader.fields, shared)))
            for i, r in enumerate(records)]


def noisy_records(node: str, latent: dict, hidden, input_name: str = "noisy_latent") -> list:
    """Each row's record with its noise level; refused, by name, where a row's level or keep region
    cannot be told."""
    if not carried(latent) and all(r is None for r in attribute(latent)):
        raise ValueError(f"{node}: input '{input_name}' carries no SDEdit noise level. Connect it from "
                         "an 'SDEdit 2 · Add Noise' node (Encode → Add Noise → Denoise).")
    records = own_records(Reader(
        node, input_name, LEVEL, any_size=True, required=True,
        unknown="its noise level cannot be told (the batch holds several)",
        fix="put latent nodes that change values before SDEdit 2 · Add Noise; between Add Noise and Denoise use "
            "batch nodes only (Repeat Latent Batch, Latent From Batch, Latent Batch, Rebatch Latents)."),
        latent, hidden)
    unnoised = [i + 1 for i, r in enumerate(records) if r.sigma is None]
    if unnoised:
        raise ValueError(f"{node}: picture(s) {', '.join(map(str, unnoised[:8]))} of input '{input_name}' "
                         "carry no SDEdit noise level (a clean or already denoised latent). Connect it from "
                         "an 'SDEdit 2 · Add Noise' node (Encode → Add Noise → Denoise).")
    return records


def by_level(records) -> dict:
    """Rows grouped by noise level, seed and noise kind, in the order they first appear: one sampler run each."""
    groups = {}
    for i, record in enumerate(records):
        groups.setdefault(record.level, []).append(i)
    return groups


def keep_masks(latent: dict, records, rows: list) -> torch.Tensor | None:
    """The denoise mask for `rows`: a host noise_mask set since Encode (in the frame the VAE saw), else each
    picture's own Encode mask (none: edit everywhere); None where no row has a mask."""
    host = host_mask(latent, records)
    if host is not None:
        geometry = next((r.geometry for r in records if r.geometry is not None), None)
        host = mask_in_working_frame(host, geometry)
        if host.shape[0] == 1 or len(rows) == len(records):  # the host fits it to the batch (and to video frames)
            return host
        return comfy.utils.repeat_to_batch_size(host, len(records))[rows]
    own = [records[i].working_mask for i in rows]
    if all(m is None for m in own):
        return None
    samples = latent["samples"]
    if samples.ndim == 5 and any(m is not None and not bool((m == m[:1]).all()) for m in own):
        # Masks that change from frame to frame: each latent frame takes its own VAE group's frames, which
        # the host's interpolation in time does not follow. One mask for all frames stays as it was.
        grouped = [None if m is None else masking.to_latent_frames(m.float(), samples.shape[2]) for m in own]
        if all((g is None) == (m is None) for g, m in zip(grouped, own)):
            own = grouped
    shape = next(m for m in own if m is not None).shape
    return torch.cat([torch.ones(shape) if m is None else m.float() for m in own])
