"""SDEdit 3 · Denoise (and its Custom twin): the U-Net predicts the noise in the noisy latent, conditioned on the prompt, and the
sampler removes it; repeated for the steps that remain below the starting noise level."""
import copy
import logging

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from . import checks, masking, pictures, strength_map, tiles
from .common import CATEGORY, check_latent_channels, io
from .image_size import mask_in_working_frame
from .sdedit_math import STEP_MODES, add_noise, sdedit_sigmas, start_sigma

NODE = "SDEdit 3 · Denoise"


class ContinueFromNoisyLatent(comfy.samplers.KSAMPLER):
    """One of the host's samplers, started from the noisy latent it is given.

    The host's KSAMPLER.sample first noises the clean latent itself; SDEdit's latent is noised already
    (by Add Noise, possibly edited since), so this starts the same sampler function from `start`.
    Everything else is set as KSAMPLER.sample sets it: the wrapped model gets the clean latent and the
    noise, so the host's KSamplerX0Inpaint re-noises the keep region of a `denoise_mask` after every
    step, and a `denoise_mask_function` or sampler that reads them sees what it sees under the host.
    """

    def __init__(self, sampler_function, extra_options, inpaint_options, start: torch.Tensor, final: bool = True):
        super().__init__(sampler_function, extra_options, inpaint_options)
        self.start = start  # the noisy latent, VAE space
        self.final = final  # False: the run stops above 0 and its noisy latent goes on to another run

    @classmethod
    def of(cls, sampler, start: torch.Tensor, node: str = NODE, input_name: str = "sampler_name",
           final: bool = True) -> "ContinueFromNoisyLatent":
        """`sampler`: a host SAMPLER (KSAMPLER), or the name of one of the host's samplers."""
        host = comfy.samplers.sampler_object(sampler) if isinstance(sampler, str) else sampler
        if not isinstance(host, comfy.samplers.KSAMPLER):
            raise ValueError(f"{node}: input '{input_name}' is not a k-diffusion sampler ({type(host).__name__}), "
                             "so it cannot continue from a noisy latent. Fix: use the host's KSamplerSelect or "
                             "one of its Sampler... nodes (SamplerEulerAncestral, SamplerDPMPP_2M_SDE, ...).")
        return cls(host.sampler_function, host.extra_options, host.inpaint_options, start, final)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
               denoise_mask=None, disable_pbar=False):
        extra_args["denoise_mask"] = denoise_mask
        model_k = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
        model_k.latent_image = latent_image
        if self.inpaint_options.get("random", False):  # as the host draws it, wrapped where its seed + 1 overflows
            generator = torch.manual_seed((extra_args.get("seed", 41) + 1) % 2**64)
            model_k.noise = torch.randn(noise.shape, generator=generator, device="cpu").to(noise.dtype).to(noise.device)
        else:
            model_k.noise = noise
        x = model_wrap.inner_model.process_latent_in(self.start.to(latent_image.device))
        total_steps = len(sigmas) - 1
        k_callback = None
        if callback is not None:
            k_callback = lambda d: callback(d["i"], d["denoised"], d["x"], total_steps)  # noqa: E731
        x = self.sampler_function(model_k, x, sigmas, extra_args=extra_args,
                                  callback=k_callback, disable=disable_pbar, **self.extra_options)
        if not self.final:  # still noisy: the next run continues from this very latent
            return x
        return model_wrap.inner_model.model_sampling.inverse_noise_scaling(sigmas[-1], x)


def progress_callback(model, steps: int, trajectory: list):
    """The host's progress bar and latent previews, plus a Cancel check after every step; appends each
    step's prediction of the clean latent (model space) to `trajectory`."""
    preview = latent_preview.prepare_callback(model, steps)

    def callback(step, x0, x, total_steps):
        trajectory.append(x0.to(comfy.model_management.intermediate_device(), torch.float32, copy=True))
        preview(step, x0, x, total_steps)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return callback


def discards_penultimate(sampler) -> bool:
    """Whether the host's KSampler drops the penultimate sigma for this sampler (dpm_2, uni_pc, ...)."""
    if isinstance(sampler, str):
        return sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    function = getattr(sampler, "sampler_function", None)
    return any(comfy.samplers.sampler_object(name).sampler_function is function
               for name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS)


def denoise(guider, sampler, sigmas: torch.Tensor, noisy_latent: torch.Tensor, seed: int,
            clean_latent: torch.Tensor | None = None, noise: torch.Tensor | None = None,
            denoise_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs the host's `guider` with `sampler` (a SAMPLER or a sampler's name) over `sigmas`, from
    `noisy_latent` (VAE space) on.

    `clean_latent` and `noise` (what Add Noise drew) are what the host's sampler would be given; where
    `denoise_mask` is 0 they make the keep region, re-noised to each step's level.
    Returns the denoised latent and the trajectory: the model's clean-latent prediction at every step,
    in VAE space like the result, step-major (entry s * batch + b is step s of image b).
    """
    model = guider.model_patcher
    if clean_latent is None:
        clean_latent = noisy_latent
    if noise is None:
        noise = torch.zeros_like(noisy_latent)
    predictions = []
    samples = guider.sample(noise, clean_latent, ContinueFromNoisyLatent.of(sampler, noisy_latent), sigmas,
                            denoise_mask=denoise_mask,
                            callback=progress_callback(model, len(sigmas) - 1, predictions),
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    samples = samples.to(comfy.model_management.intermediate_device())
    if not predictions:  # adaptive samplers (dpm_adaptive) may finish without reporting a step
        return samples, samples.clone()
    # The callback sees model space; the guider's own process_latent_out brings the result back.
    trajectory = model.get_model_object("latent_format").process_out(torch.cat(predictions))
    return samples, trajectory


def denoise_by_map(guider, sampler, sigmas: torch.Tensor, noisy_latent: torch.Tensor, seed: int,
                   clean_latent: torch.Tensor, noise: torch.Tensor, join: torch.Tensor, levels: list,
                   noisy_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`denoise` for a strength map (nodes/strength_map.py): one sampler run from each join level to the next,
    over `sigmas` (the schedule with the join levels in it), each with a 0/1 mask of the cells joined so far.
    Where a part joins, its latent is set to its clean latent noised with Add Noise's noise to that level, made
    as Add Noise makes it; the parts at Add Noise's own level start from `noisy_latent` itself."""
    model = guider.model_patcher
    model_sampling, latent_format = model.get_model_object("model_sampling"), model.get_model_object("latent_format")
    clean_in = latent_format.process_in(clean_latent)
    parts = strength_map.segments(sigmas, levels)
    total, done, predictions = len(sigmas) - 1, 0, []
    step_callback = progress_callback(model, total, predictions)
    x = None
    for k, (level, part) in enumerate(parts):
        held = latent_format.process_out(add_noise(model_sampling, clean_in, noise, level))
        now = strength_map.joining(join, level).to(held.device)
        if x is None:
            x = torch.where(now, noisy_latent, held) if abs(level - noisy_sigma) <= level * strength_map.SAME_LEVEL \
                else held
        else:
            x = torch.where(now, held, x.to(held.device))
        mask = strength_map.joined(join, level).to(noisy_latent.dtype)
        offset = done
        x = guider.sample(noise, clean_latent,
                          ContinueFromNoisyLatent.of(sampler, x, final=k == len(parts) - 1), part, denoise_mask=mask,
                          callback=lambda step, x0, xs, _, offset=offset: step_callback(offset + step, x0, xs, total),
                          disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        x = x.to(comfy.model_management.intermediate_device())
        done += len(part) - 1
    if not predictions:
        return x, x.clone()
    return x, latent_format.process_out(torch.cat(predictions))


def without_mask_function(guider):
    """A shallow copy of `guider` without a denoise_mask_function (the host's DifferentialDiffusion): a strength
    map already says when each part joins, and the patch would threshold the map a second time."""
    if "denoise_mask_function" not in guider.model_options:
        return guider
    logging.info("%s: the strength map sets when each part of the picture is denoised; the model's "
                 "denoise_mask_function (Differential Diffusion) is not applied on top of it.", NODE)
    plain = copy.copy(guider)
    plain.model_options = {k: v for k, v in guider.model_options.items() if k != "denoise_mask_function"}
    return plain


def noisy_records(node: str, latent: dict, hidden, input_name: str = "noisy_latent") -> list:
    """Each row's record with its noise level; refused, by name, where a row's level or keep region
    cannot be told."""
    samples = latent["samples"]
    records, carried = pictures.attribute(latent), pictures.carried(latent)
    if not carried and all(r is None for r in records):
        raise ValueError(f"{node}: input '{input_name}' carries no SDEdit noise level. Connect it from "
                         "an 'SDEdit 2 · Add Noise' node (Encode → Add Noise → Denoise).")
    if any(r is None for r in records):
        levels = {r.level for r in carried if r.sigma is not None}
        masked = latent.get("noise_mask") is not None or any(r.mask is not None for r in carried)
        if masked or len(levels) != 1:
            checks.refuse(pictures.unattributed(
                node, input_name, records, hidden,
                "its keep region cannot be restored" if masked else
                "its noise level cannot be told (the batch holds several)",
                "put latent nodes that change values before SDEdit 2 · Add Noise; between Add Noise and "
                "Denoise use batch nodes only (Repeat Latent Batch, Latent From Batch, Latent Batch, "
                "Rebatch Latents)."))
        sigma, strength, seed, kind = levels.pop()
        records = [r or pictures.Picture(row="", clean=samples[i], sigma=sigma, strength=strength, seed=seed,
                                         noise_kind=kind) for i, r in enumerate(records)]
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
    host = pictures.host_mask(latent, records)
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


def run(node: str, guider, sampler, latent: dict, steps: int, scheduler: str, step_mode: str,
        hidden, tiling: tiles.Tiling | None = None) -> tuple[dict, dict, torch.Tensor]:
    """Denoising for every picture of the batch, each from its own noise level (one sampler run per
    level): the denoised LATENT, the trajectory LATENT and the sigmas of the first run. With `tiling`, the
    model runs on blended tiles of the latent (nodes/tiles.py); None: on the whole latent."""
    samples = latent["samples"]
    records = noisy_records(node, latent, hidden)
    if tiling is not None:
        guider = tiles.tiled_guider(node, guider, tiling)
    model_sampling = guider.model_patcher.get_model_object("model_sampling")
    discard = discards_penultimate(sampler)
    results, trajectories, first_sigmas = [None] * len(records), [], None
    for (sigma, strength, seed, kind), rows in by_level(records).items():
        part = samples[rows]
        if sigma <= 0.0:  # strength 0: nothing to remove
            out, trajectory, sigmas = part, part, torch.zeros(0)
        else:
            checks.refuse(checks.same_noise_kind(node, "noisy_latent", kind, model_sampling))
            if sigma > float(model_sampling.sigma_max) * 1.001:
                raise ValueError(f"{node}: input 'noisy_latent' was noised to sigma {sigma:.4g}, above this "
                                 f"model's maximum {float(model_sampling.sigma_max):.4g}. Connect the same MODEL "
                                 "to Add Noise and Denoise.")
            sigmas = sdedit_sigmas(model_sampling, scheduler, steps, strength, sigma, step_mode, discard)
            picked = [records[i] for i in rows]
            clean = torch.stack([r.clean for r in picked]).to(part.dtype)
            noise = torch.stack([torch.zeros_like(r.clean) if r.noise is None else r.noise for r in picked])
            mask = keep_masks(latent, records, rows)
            if mask is None or strength_map.is_binary(mask):
                out, trajectory = denoise(guider, sampler, sigmas, part, seed, clean, noise.to(part.dtype), mask)
            else:  # grey: a strength per pixel
                cells = strength_map.latent_map(mask, part.shape)
                bins = strength_map.bins_for(len(sigmas) - 1)
                join, levels = strength_map.join_levels(model_sampling, strength, cells, bins)
                top = strength_map.top_strength(cells, strength, bins)
                sigmas = strength_map.map_schedule(
                    sdedit_sigmas(model_sampling, scheduler, steps, top, start_sigma(model_sampling, top), step_mode,
                                  discard), levels)
                # Grey parts join from this round's latent (a repeat's: the last result); kept parts stay the input's.
                start = torch.stack([r.clean if r.start is None else r.start for r in picked]).to(part.dtype)
                held = torch.where(cells.to(start.device) > 0, start, clean)
                out, trajectory = denoise_by_map(without_mask_function(guider), sampler, sigmas, part, seed, held,
                                                 noise.to(part.dtype), join, levels, sigma)
        first_sigmas = sigmas if first_sigmas is None else first_sigmas
        for j, i in enumerate(rows):
            results[i] = out[j]
        trajectories.append((rows, trajectory))
    finished = [pictures.denoised(r) for r in records]
    done = pictures.attach(latent, torch.stack(results), finished)
    # Every step's prediction is of the same picture as the result (which is often the last entry, bit for bit):
    # each carries the picture's record, so Decode brings every step back to the input's size, frames and kept
    # pixels alike, not only the entry that equals the result.
    predicted = step_major(trajectories, len(records))
    steps_of = pictures.attach({}, predicted, [finished[i % len(records)] for i in range(predicted.shape[0])])
    return done, steps_of, first_sigmas


def step_major(trajectories, batch: int) -> torch.Tensor:
    """One trajectory from the runs' own (each step-major over its rows): entry s * batch + b is step s of
    picture b; a picture whose run had fewer steps repeats its last prediction."""
    if len(trajectories) == 1:
        return trajectories[0][1]
    steps = max(t.shape[0] // len(rows) for rows, t in trajectories)
    entries = [None] * (steps * batch)
    for rows, t in trajectories:
        own = t.shape[0] // len(rows)
        for s in range(steps):
            for j, b in enumerate(rows):
                entries[s * batch + b] = t[min(s, own - 1) * len(rows) + j]
    return torch.stack(entries)


def sampling_inputs() -> list:
    """steps, cfg, sampler_name, scheduler, step_mode: Denoise's sampling widgets, shared by the sweep."""
    return [
        io.Int.Input("steps", default=20, min=1, max=10000,
                     tooltip="Steps of the full schedule; see step_mode for how many run."),
        io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale: how strongly the prompt steers."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                       tooltip="The host's sampling algorithm."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                       tooltip="The host's schedule of noise levels."),
        io.Combo.Input("step_mode", options=list(STEP_MODES), default="proportional",
                       tooltip="proportional: runs round(strength x steps) steps, the tail of the "
                               "steps-step schedule (A1111, diffusers). all: runs all steps from the "
                               "starting noise level (ComfyUI's denoise)."),
    ]


def tiling_inputs() -> list:
    """tiling, tile_size, tile_overlap, tile_batch: optional, and off by default (today's result, bit for bit)."""
    return [
        io.Combo.Input("tiling", options=list(tiles.TILING_MODES), default="off", optional=True,
                       tooltip="on: the model runs on overlapping tiles of the latent at every step, blended "
                               "into one prediction before the sampler's step (no seams by construction), for "
                               "pictures larger than the model. off: the whole latent at once."),
        io.Int.Input("tile_size", default=0, min=0, max=16384, step=8, optional=True,
                     tooltip="Tile side in pixels. 0: the model's native size (512 for SD1.5, 1024 for SDXL)."),
        io.Int.Input("tile_overlap", default=128, min=0, max=16384, step=8, optional=True,
                     tooltip="Pixels shared by neighbouring tiles, over which their predictions are blended "
                             "smoothly; at least this much, spread evenly."),
        io.Int.Input("tile_batch", default=0, min=0, max=1024, optional=True,
                     tooltip="Most tiles per model call. 0: as many as memory allows (fewest calls)."),
    ]


def tiling_of(node: str, tiling: str, tile_size: int, tile_overlap: int, tile_batch: int) -> tiles.Tiling | None:
    checks.refuse(checks.choice(node, "tiling", tiling, tiles.TILING_MODES, "the tiling modes"))
    return None if tiling == "off" else tiles.Tiling(int(tile_size), int(tile_overlap), int(tile_batch))


def check_widgets(cfg, sampler_name, scheduler, step_mode) -> list:
    return [checks.cfg(NODE, cfg),
            checks.choice(NODE, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS, "the host's samplers"),
            checks.choice(NODE, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS, "the host's schedulers"),
            checks.choice(NODE, "step_mode", step_mode, STEP_MODES, "the step modes")]


class SDEditDenoise(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditSampler",
            display_name=NODE,
            category=CATEGORY,
            description="The third of the four SDEdit nodes: denoises the noisy latent from its noise level "
                        "down to a clean latent, guided by the prompt, with any of the host's samplers "
                        "and schedulers.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model; the same one given to Add Noise."),
                io.Conditioning.Input("positive", tooltip="What the result should show (CLIP Text Encode)."),
                io.Conditioning.Input("negative", tooltip="What the result should avoid."),
                io.Latent.Input("noisy_latent", tooltip="The output of SDEdit 2 · Add Noise."),
                *sampling_inputs(),
                *tiling_inputs(),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The denoised latent: connect it to SDEdit 4 · Decode."),
                io.Latent.Output("trajectory", display_name="trajectory",
                                 tooltip="The model's prediction of the clean latent after every step, as a "
                                         "batch (step by step; with several images, all images of step 1, "
                                         "then of step 2, ...). Decode it to watch the edit form. The last "
                                         "step's prediction is the result (uni_pc blends its last steps). "
                                         "At strength 0: the input latent, once. For a video (Wan): each "
                                         "entry is the whole video's latent (all its frames, as Encode padded "
                                         "them in time), so it decodes to one clip per step, one after another."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, cfg, sampler_name, scheduler, step_mode) -> bool | str:
        return checks.first_problem(*check_widgets(cfg, sampler_name, scheduler, step_mode))

    @classmethod
    def execute(cls, model, positive, negative, noisy_latent, steps, cfg, sampler_name, scheduler,
                step_mode, tiling="off", tile_size=0, tile_overlap=128, tile_batch=0) -> io.NodeOutput:
        checks.refuse(*check_widgets(cfg, sampler_name, scheduler, step_mode))
        tiled = tiling_of(NODE, tiling, tile_size, tile_overlap, tile_batch)
        if tiled is not None:
            checks.refuse(tiles.position_dependent(NODE, [("positive", positive), ("negative", negative)]))
        # first: it refuses nested latents and non-tensors, which the value checks cannot read
        check_latent_channels(NODE, "noisy_latent", noisy_latent["samples"], model)
        checks.refuse(checks.latent(NODE, "noisy_latent", noisy_latent))
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        out, trajectory, _ = run(NODE, guider, sampler_name, noisy_latent, steps, scheduler, step_mode, cls.hidden,
                                 tiled)
        return io.NodeOutput(out, trajectory)


CUSTOM = "SDEdit 3 · Denoise (Custom)"


class SDEditDenoiseCustom(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditSamplerCustom",
            display_name=CUSTOM,
            category=CATEGORY,
            description="SDEdit 3 · Denoise with the host's custom sampling: denoises the noisy latent from its noise "
                        "level with any GUIDER (CFGGuider, DualCFGGuider, PerpNegGuider, BasicGuider, ...) and "
                        "SAMPLER (KSamplerSelect, SamplerEulerAncestral, SamplerDPMPP_2M_SDE, ...), over the same "
                        "schedule, keep region and seed as SDEdit 3 · Denoise.",
            inputs=[
                io.Guider.Input("guider", tooltip="The host's guider: the model and the conditioning (and its cfg)."),
                io.Sampler.Input("sampler", tooltip="The host's sampler (KSamplerSelect or a Sampler... node)."),
                io.Latent.Input("noisy_latent", tooltip="The output of SDEdit 2 · Add Noise."),
                *sampling_inputs()[:1], *sampling_inputs()[3:],  # steps, scheduler, step_mode
                *tiling_inputs(),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The denoised latent: connect it to SDEdit 4 · Decode."),
                io.Latent.Output("trajectory", display_name="trajectory",
                                 tooltip="The model's prediction of the clean latent after every step, as "
                                         "SDEdit 3 · Denoise gives it."),
                io.Sigmas.Output("sigmas", display_name="sigmas",
                                 tooltip="The noise levels that ran (from the strength's level down to 0; with "
                                         "several levels in the batch, the first picture's)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, scheduler, step_mode) -> bool | str:
        return checks.first_problem(*check_custom_widgets(scheduler, step_mode))

    @classmethod
    def execute(cls, guider, sampler, noisy_latent, steps, scheduler, step_mode, tiling="off", tile_size=0,
                tile_overlap=128, tile_batch=0) -> io.NodeOutput:
        checks.refuse(*check_custom_widgets(scheduler, step_mode))
        tiled = tiling_of(CUSTOM, tiling, tile_size, tile_overlap, tile_batch)
        if tiled is not None:  # the guider's conditioning, by the node's own input name
            conds = getattr(guider, "original_conds", {}).values()
            checks.refuse(tiles.position_dependent(CUSTOM, [("guider", [e for c in conds for e in c])]))
        check_latent_channels(CUSTOM, "noisy_latent", noisy_latent["samples"], guider.model_patcher)
        checks.refuse(checks.latent(CUSTOM, "noisy_latent", noisy_latent))
        ContinueFromNoisyLatent.of(sampler, noisy_latent["samples"], CUSTOM, "sampler")  # refuses before running
        out, trajectory, sigmas = run(CUSTOM, guider, sampler, noisy_latent, steps, scheduler, step_mode, cls.hidden,
                                      tiled)
        return io.NodeOutput(out, trajectory, sigmas)


def check_custom_widgets(scheduler, step_mode) -> list:
    return [checks.choice(CUSTOM, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS, "the host's schedulers"),
            checks.choice(CUSTOM, "step_mode", step_mode, STEP_MODES, "the step modes")]
