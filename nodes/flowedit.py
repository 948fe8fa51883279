"""SDEdit 3 · FlowEdit: inversion-free text-based editing (Kulikov et al. 2024, arXiv 2412.08629, Algorithm 1),
on the host's guider and ODE, in place of SDEdit 3 · Denoise.

Z starts at the clean latent X. At every level sigma_i of the strength's schedule: one noise draw N;
Z_src = the model's own noising of X to sigma_i; Z_tar = Z + Z_src - X; the ODE velocities
V = (x - D(x, sigma)) / sigma at Z_src (source prompt, source cfg) and at Z_tar (target prompt, target cfg);
Z <- Z + (sigma_{i+1} - sigma_i) (V_tar - V_src). Both branches share N: the method is that coupling.
The velocity is the host's own ODE (k-diffusion's to_d), so EPS, v-prediction and flow models all run it.
"""
import math

import comfy.model_management
import comfy.samplers
import comfy.utils
import torch
from tqdm.auto import trange

from . import checks, engine, pictures, strength_map, tiles, widgets
from .common import CATEGORY, check_latent_channels, io
from .sdedit_math import STEP_MODES, shuffled_noise, start_sigma

NODE = "SDEdit 3 · FlowEdit"
EULER = "euler"  # the engine's plan asks which sampler runs: FlowEdit's own loop, an Euler step on the ODE


# --- the maths (pure) ---------------------------------------------------------------------------------------

def noised(model_sampling, clean: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The model's own noising of `clean` to `sigma` (EPS: x + sigma n; flow: (1 - sigma) x + sigma n)."""
    return model_sampling.noise_scaling(torch.tensor(float(sigma)), noise, clean)


def velocity(x: torch.Tensor, denoised: torch.Tensor, sigma: float) -> torch.Tensor:
    """The probability-flow ODE's dx/dsigma, as the host's samplers use it (k-diffusion's to_d)."""
    return (x - denoised) / sigma


def target_branch(z: torch.Tensor, z_src: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Z_tar = Z + Z_src - X: the edit so far carried onto the source's noisy latent (as Z_src + (Z - X), so that
    with no edit yet it is Z_src bit for bit and equal prompts give equal velocities)."""
    return z_src + (z - clean)


def step(z: torch.Tensor, sigma: float, sigma_next: float, v_delta: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Z <- Z + (sigma_next - sigma) (V_tar - V_src) where `active` (cells edited at this level); elsewhere Z as it is."""
    return torch.where(active, z + (sigma_next - sigma) * v_delta, z)


def shown_as_edit(latent_format, clean: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """The result in VAE space: the clean latent plus the edit (model space) brought out by the latent format's
    linear part, so that where the edit is 0 the result is the clean latent bit for bit."""
    return clean + (latent_format.process_out(displacement) - latent_format.process_out(torch.zeros_like(displacement)))


# --- the host's guider with two prompts -----------------------------------------------------------------------

# sha256 of the host's comfy.samplers.sampling_function as FlowEditGuider.predict_noise mirrors it for two branches
# (ComfyUI 0.3.64, the same in 0.3.50 and 0.8.0; as the AST prints it, without comments and layout):
# tests/test_engine.py fails when the host's function changes.
MIRRORED_SAMPLING_FUNCTION = "b3208bf0c3a8c0670e0bd45e3dc3e1c0c6879106afb42fbc6d88e11f3c9fbd08"


def cfg1(cfg: float, model_options: dict) -> bool:
    """The host's cfg-1 shortcut (sampling_function): no uncond is computed."""
    return math.isclose(cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False)


UNSHARED = ("area", "mask", "timestep_start", "timestep_end", "hooks", "gligen", "default", "strength")


def shared_prompt(source: list | None, target: list | None, rows: int) -> list | None:
    """One conditioning for 2 x `rows` rows, the source prompt's for the first `rows` and the target's for the
    rest, so that both branches run in one model call as the host batches cond and uncond; None where the host
    would not batch them either: several entries, an area, mask, time range, hook or GLIGEN, another ControlNet,
    or tensors the host's conds cannot concatenate (cross-attention lengths too far apart)."""
    if not source or not target or len(source) != 1 or len(target) != 1:
        return None
    s, t = source[0], target[0]
    if any(k in s or k in t for k in UNSHARED) or s.get("control") is not t.get("control"):
        return None
    if set(s["model_conds"]) != set(t["model_conds"]):
        return None
    merged = {}
    for key, cond in s["model_conds"].items():
        a = cond.process_cond(batch_size=rows, area=None)
        b = t["model_conds"][key].process_cond(batch_size=rows, area=None)
        if type(a) is not type(b) or not a.can_concat(b):
            return None
        merged[key] = a._copy_with(a.concat([b]))
    return [{**s, "model_conds": merged}]


class FlowEditGuider(comfy.samplers.CFGGuider):
    """A CFGGuider holding the source prompt ("positive"), the target prompt ("target") and the negative, with a
    cfg for each branch. Given 2B rows (the source's B, then the target's B) it predicts both; given B, the target
    only. Both branches go through the host's calc_cond_batch in one call (cond and uncond of both batched, as
    sampling_function batches one branch's) and then each through the host's pre-cfg and cfg functions, so model
    patches, LoRA, ControlNet, cfg functions and previews are the host's. Where the prompts cannot share a call
    (shared_prompt), or the cfg-1 shortcut applies to one branch only, each branch is its own sampling_function."""

    rows = 0  # B, set by the sampler

    def set_flowedit(self, source, target, negative, source_cfg: float, target_cfg: float):
        self.inner_set_conds({"positive": source, "target": target, "negative": negative})
        self.source_cfg, self.target_cfg = float(source_cfg), float(target_cfg)

    def branch(self, x, timestep, cond: str, cfg: float, model_options, seed):
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                                self.conds.get(cond), cfg, model_options=model_options, seed=seed)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        b = self.rows
        if x.shape[0] != 2 * b:
            return self.branch(x, timestep, "target", self.target_cfg, model_options, seed)
        # made from the conds the host processed for this sample call (an inpainting model's concat is the
        # group's); a concatenation per level, nothing beside a model call
        shared = shared_prompt(self.conds.get("positive"), self.conds.get("target"), b)
        one_call = (shared is not None and "sampler_calc_cond_batch_function" not in model_options
                    and cfg1(self.source_cfg, model_options) == cfg1(self.target_cfg, model_options))
        if not one_call:
            return torch.cat([self.branch(x[:b], timestep[:b], "positive", self.source_cfg, model_options, seed),
                              self.branch(x[b:], timestep[b:], "target", self.target_cfg, model_options, seed)])
        negative = None if cfg1(self.source_cfg, model_options) else self.conds.get("negative")
        out = comfy.samplers.calc_cond_batch(self.inner_model, [shared, negative], x, timestep, model_options)
        results = []
        for rows, name, cfg in ((slice(0, b), "positive", self.source_cfg), (slice(b, 2 * b), "target", self.target_cfg)):
            cond, xs, ts = self.conds.get(name), x[rows], timestep[rows]
            branch_out = [out[0][rows], out[1][rows]]
            for fn in model_options.get("sampler_pre_cfg_function", []):  # as sampling_function, per branch
                branch_out = fn({"conds": [cond, negative], "conds_out": branch_out, "cond_scale": cfg, "timestep": ts,
                                 "input": xs, "sigma": ts, "model": self.inner_model, "model_options": model_options})
            results.append(comfy.samplers.cfg_function(self.inner_model, branch_out[0], branch_out[1], cfg, xs, ts,
                                                       model_options=model_options, cond=cond, uncond=negative))
        return torch.cat(results)


class FlowEditSampler(comfy.samplers.Sampler):
    """FlowEdit as a host SAMPLER: the guider gives D(x, sigma); this walks the levels. `clean` is X (VAE space),
    `join` the level from which each latent cell is edited (0: kept), `sample_last` the last levels run as the host's
    Euler sampling with the target prompt from the FlowEdit latent (the paper's n_min), `freenoise` the model's
    FreeNoise shuffle (checks.freenoise). After `sample`, `displacement` holds Z - X (model space): exactly 0 where
    no level edited."""

    def __init__(self, clean: torch.Tensor, join: torch.Tensor, seed: int, average: int = 1, sample_last: int = 0,
                 freenoise: tuple = ()):
        self.clean, self.join, self.seed = clean, join, int(seed)
        self.average, self.sample_last = max(1, int(average)), max(0, int(sample_last))
        self.freenoise = freenoise
        self.displacement = None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        inner = model_wrap.inner_model
        ms = inner.model_sampling
        x_clean = inner.process_latent_in(self.clean.to(noise.device, torch.float32))
        join = self.join.to(noise.device)  # (B, 1, *latent grid): broadcasts over the channels
        model_wrap.rows = rows = x_clean.shape[0]
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        generator = torch.Generator().manual_seed(self.seed % 2**64)
        levels = len(sigmas) - 1
        flow_levels = levels - min(self.sample_last, levels)
        z, x_tar, tail_noise = x_clean.clone(), None, None

        def draw():  # each draw stands where a sampler's starting noise would: FreeNoise shuffles it as the host would
            noise = torch.randn(x_clean.shape, generator=generator)
            return shuffled_noise(noise, self.freenoise, self.seed).to(x_clean)

        def denoised(x, sigma):
            return model_wrap(x, sigma * x.new_ones(x.shape[0]), **options).to(x.dtype)

        for i in trange(levels, disable=disable_pbar):
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            active = strength_map.joined(join, sigma)
            if i < flow_levels:
                v_delta = torch.zeros_like(z)
                for _ in range(self.average):
                    z_src = noised(ms, x_clean, draw(), sigma)
                    both = torch.cat([z_src, target_branch(z, z_src, x_clean)])
                    v = velocity(both, denoised(both, sigma), sigma)
                    v_delta += (v[rows:] - v[:rows]) / self.average
                z = step(z, sigma, sigma_next, v_delta, active)
                shown = z
            else:  # the paper's n_min: ordinary sampling with the target prompt, kept cells held on X re-noised
                if x_tar is None:
                    tail_noise = draw()
                    x_tar = target_branch(z, noised(ms, x_clean, tail_noise, sigma), x_clean)
                x_tar = torch.where(active, x_tar, noised(ms, x_clean, tail_noise, sigma))
                shown = denoised(x_tar, sigma)
                x_tar = x_tar + (sigma_next - sigma) * velocity(x_tar, shown, sigma)
                if i == levels - 1:
                    z = torch.where(join > 0, x_tar, x_clean)
            if callback is not None:
                callback(i, shown, z, levels)
        self.displacement = torch.where(join > 0, z - x_clean, torch.zeros_like(z))
        return z


# --- the mode of the engine's run (one call per noise level of the batch) --------------------------------------

def edit(guider, sigmas: torch.Tensor, clean: torch.Tensor, join: torch.Tensor, seed: int, average: int,
         sample_last: int, denoise_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """FlowEdit of `clean` (VAE space) over `sigmas` through the host's guider: (the edited latent, the trajectory:
    Z after every level, VAE space, step-major)."""
    model = guider.model_patcher
    latent_format = model.get_model_object("latent_format")
    sampler = FlowEditSampler(clean, join, seed, average, sample_last, checks.freenoise(model))
    predictions = []
    guider.sample(torch.zeros_like(clean), clean, sampler, sigmas, denoise_mask=denoise_mask,
                  callback=engine.progress_callback(model, len(sigmas) - 1, predictions),
                  disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    device = comfy.model_management.intermediate_device()
    out = shown_as_edit(latent_format, clean.to(device), sampler.displacement.to(device, clean.dtype))
    return out, engine.trajectory_of(model, out, predictions)


def schedule(plan, strength: float, mask: torch.Tensor | None, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """(the levels, each latent cell's join level): the strength's schedule as Denoise computes it (`plan`, the
    engine's); with a grey mask, that of its most edited cells with every part's own join level added
    (nodes/strength_map.py). A cell that is never edited joins at 0."""
    ms = plan.model_sampling
    cells = torch.ones((shape[0], 1, *shape[2:])) if mask is None else strength_map.latent_map(mask, shape)
    bins = strength_map.bins_for(plan.steps)
    join, levels = strength_map.join_levels(ms, strength, cells, bins)
    top = strength_map.top_strength(cells, strength, bins)
    if top <= 0.0:
        return torch.zeros(0), join
    return strength_map.map_schedule(plan.sigmas(top, start_sigma(ms, top)), levels), join


def mode(average: int = 1, sample_last: int = 0):
    """FlowEdit as a mode of engine.run: each group of the batch (one noise level) edited from its clean latent."""
    def flowedit_group(guider, sampler, group, plan):
        sigmas, join = schedule(plan, group.strength, group.mask, group.noisy.shape)
        if len(sigmas) < 2:  # a mask that edits nothing
            return group.clean, group.clean, sigmas
        binary = None if group.mask is None else (group.mask > 0).to(group.clean.dtype)  # inpainting models' concat
        if group.mask is not None:  # the join levels are FlowEdit's mask rule: say so where Differential Diffusion is wired
            guider = strength_map.without_mask_function(guider, NODE)
        out, trajectory = edit(guider, sigmas, group.clean, join, group.seed, average, sample_last, binary)
        return out, trajectory, sigmas
    return flowedit_group


# --- the node ---------------------------------------------------------------------------------------------------

def token_width(conditioning) -> int | None:
    entries = [e for e in conditioning or [] if isinstance(e, (list, tuple)) and isinstance(e[0], torch.Tensor)]
    return int(entries[0][0].shape[-1]) if entries else None


def model_token_width(model) -> int | None:
    """The width of the text tokens the model takes, where its config says it (SD1.x/SD2/SDXL, SD3, Flux)."""
    config = getattr(getattr(model.model, "model_config", None), "unet_config", {}) or {}
    if "context_dim" in config and isinstance(config["context_dim"], int):
        return config["context_dim"]
    if "context_in_dim" in config:
        return int(config["context_in_dim"])
    embedder = config.get("context_embedder_config")
    if isinstance(embedder, dict):
        return int(embedder.get("params", {}).get("in_features", 0)) or None
    return None


def prompt_shapes(model, source, target, negative) -> str | None:
    """An error naming the prompt whose text tokens are of another model's width (another CLIP encoded it)."""
    expected = model_token_width(model)
    widths = {name: token_width(c) for name, c in (("source_positive", source), ("target_positive", target),
                                                    ("negative", negative))}
    reference = expected or widths["target_positive"]
    for name, width in widths.items():
        if width is not None and reference is not None and width != reference:
            return (f"{NODE}: input '{name}' holds text tokens {width} wide, but "
                    f"{'this model takes' if expected else 'target_positive holds'} {reference}: it was encoded by "
                    "another model's text encoder. Fix: encode every prompt with the CLIP of the checkpoint whose "
                    "MODEL is connected (the same CLIP Text Encode type for source, target and negative).")
    return None


def check_widgets(source_cfg, target_cfg, scheduler, step_mode) -> list:
    return [checks.number_in_range(NODE, "source_cfg", source_cfg, 0.0, 100.0, "set a guidance scale from 0 to 100 "
                                   "(the paper: 3.5 on SD3, 1.5 on Flux)."),
            checks.number_in_range(NODE, "target_cfg", target_cfg, 0.0, 100.0, "set a guidance scale from 0 to 100 "
                                   "(the paper: 13.5 on SD3, 5.5 on Flux)."),
            *widgets.schedule_checks(NODE, scheduler, step_mode)]


def replaced_content(noisy_latent: dict) -> str | None:
    """FlowEdit edits from the source picture itself: a masked part Encode replaced (masked_content) is not it."""
    modes = {r.masked_content for r in pictures.carried(noisy_latent)} - {"original"}
    if not modes:
        return None
    return (f"{NODE}: input 'noisy_latent' comes from SDEdit 1 · Encode with masked_content "
            f"'{sorted(modes)[0]}', but FlowEdit edits from the source picture itself, so a replaced masked part has "
            "no meaning here. Fix: set Encode's masked_content to 'original', or use SDEdit 3 · Denoise to remove "
            "an object.")


class SDEditFlowEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SDEditFlowEdit",
            display_name=NODE,
            category=CATEGORY,
            description="FlowEdit (Kulikov et al. 2024) in place of SDEdit 3 · Denoise: changes what the target prompt "
                        "asks and keeps the rest of the picture (composition, pose, edges), without inverting it. "
                        "Needs a source prompt that describes the input. Source and target run in one model call "
                        "per level where the host can batch them; flow models (SD3, Flux, Wan) as published, EPS/v models through their own ODE.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model; the same one given to Add Noise."),
                io.Conditioning.Input("source_positive", tooltip="What the input picture shows (CLIP Text Encode)."),
                io.Conditioning.Input("target_positive", tooltip="What the result should show: the source prompt "
                                                                 "with the words to change changed."),
                io.Conditioning.Input("negative", tooltip="What both branches steer away from (often empty)."),
                io.Latent.Input("noisy_latent", tooltip="The output of SDEdit 2 · Add Noise: its strength sets the "
                                                        "first level (the paper's n_max = strength x steps), its "
                                                        "seed the noise draws."),
                io.Int.Input("steps", default=28, min=1, max=10000,
                             tooltip="Steps of the full schedule; see step_mode for how many run. The paper: 50 at "
                                     "strength 0.66 on SD3 (n_max 33), 28 at strength 0.86 on Flux (n_max 24)."),
                io.Float.Input("source_cfg", default=3.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance of the source branch. The paper: 3.5 on SD3; 1.5 on Flux (Flux "
                                       "dev: set it with FluxGuidance on source_positive, cfg 1)."),
                io.Float.Input("target_cfg", default=13.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance of the target branch. The paper: 13.5 on SD3; 5.5 on Flux (Flux "
                                       "dev: FluxGuidance on target_positive, cfg 1)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                               tooltip="The host's schedule of noise levels (the paper: simple on flow models)."),
                io.Combo.Input("step_mode", options=list(STEP_MODES), default="proportional",
                               tooltip="proportional: round(strength x steps) levels, the tail of the steps-step "
                                       "schedule (the paper's n_max of T). all: steps levels from the strength's."),
                io.Int.Input("average", default=1, min=1, max=64, optional=True,
                             tooltip="Noise draws averaged at every level (the paper's n_avg, 1). More: a smoother "
                                     "edit for that many times the model calls."),
                io.Int.Input("sample_last", default=0, min=0, max=10000, optional=True,
                             tooltip="The last levels run as ordinary sampling with the target prompt from the "
                                     "edited latent (the paper's n_min, 0: none). Adds fine detail the target asks "
                                     "for; each such level costs one model call."),
                *widgets.tiling_inputs(),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent",
                                 tooltip="The edited latent: connect it to SDEdit 4 · Decode."),
                io.Latent.Output("trajectory", display_name="trajectory",
                                 tooltip="The edited latent after every level, as a batch (all images of level 1, "
                                         "then of level 2, ...). Decode it to watch the edit form."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, source_cfg, target_cfg, scheduler, step_mode) -> bool | str:
        return checks.first_problem(*check_widgets(source_cfg, target_cfg, scheduler, step_mode))

    @classmethod
    def execute(cls, model, source_positive, target_positive, negative, noisy_latent, steps, source_cfg, target_cfg,
                scheduler, step_mode, average=1, sample_last=0, tiling="off", tile_size=0, tile_overlap=128,
                tile_batch=0) -> io.NodeOutput:
        checks.refuse(*check_widgets(source_cfg, target_cfg, scheduler, step_mode))
        tiled = widgets.tiling_of(NODE, tiling, tile_size, tile_overlap, tile_batch)
        conds = [("source_positive", source_positive), ("target_positive", target_positive), ("negative", negative)]
        if tiled is not None:
            checks.refuse(tiles.position_dependent(NODE, conds))
        check_latent_channels(NODE, "noisy_latent", noisy_latent["samples"], model)
        checks.refuse(checks.latent(NODE, "noisy_latent", noisy_latent),
                      prompt_shapes(model, source_positive, target_positive, negative),
                      replaced_content(noisy_latent))
        guider = FlowEditGuider(model)
        guider.set_flowedit(source_positive, target_positive, negative, source_cfg, target_cfg)
        out, trajectory, _ = engine.run(NODE, guider, EULER, noisy_latent, steps, scheduler, step_mode, cls.hidden,
                                        tiled, mode(average, sample_last))
        return io.NodeOutput(out, trajectory)
