"""SDEdit 3 · Denoise (and its Custom twin): the U-Net predicts the noise in the noisy latent, conditioned on the prompt, and the
sampler removes it; repeated for the steps that remain below the starting noise level. The nodes read their inputs and
share one path (`denoise_node`) into the engine (nodes/engine.py)."""
import comfy.samplers

from . import checks, strength_map, tiles
from .common import CATEGORY, check_latent_channels, io
from .engine import ContinueFromNoisyLatent, run
from .widgets import TILING_OFF, sampling_checks, sampling_inputs, schedule_checks, tiling_inputs, tiling_of

NODE = "SDEdit 3 · Denoise"
CUSTOM = "SDEdit 3 · Denoise (Custom)"


def denoise_node(node: str, guider, sampler, sampler_input: str, conds: list, noisy_latent: dict, steps: int,
                 scheduler: str, step_mode: str, hidden, tiling: tuple) -> tuple[dict, dict, object]:
    """Both nodes' run: their checks, then the engine with the strength map's mode. `conds`: (input name,
    conditioning) to check for what tiling cannot crop; `tiling`: the four tiling widgets."""
    tiled = tiling_of(node, *tiling)
    if tiled is not None:
        checks.refuse(tiles.position_dependent(node, conds))
    # first: it refuses nested latents and non-tensors, which the value checks cannot read
    check_latent_channels(node, "noisy_latent", noisy_latent["samples"], guider.model_patcher)
    checks.refuse(checks.latent(node, "noisy_latent", noisy_latent))
    ContinueFromNoisyLatent.of(sampler, noisy_latent["samples"], node, sampler_input)  # refuses before running
    return run(node, guider, sampler, noisy_latent, steps, scheduler, step_mode, hidden, tiled,
               mode=strength_map.denoise_group)


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
        return checks.first_problem(*sampling_checks(NODE, cfg, sampler_name, scheduler, step_mode))

    @classmethod
    def execute(cls, model, positive, negative, noisy_latent, steps, cfg, sampler_name, scheduler, step_mode,
                tiling="off", tile_size=TILING_OFF.tile_px, tile_overlap=TILING_OFF.overlap_px,
                tile_batch=TILING_OFF.per_call) -> io.NodeOutput:
        checks.refuse(*sampling_checks(NODE, cfg, sampler_name, scheduler, step_mode))
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        out, trajectory, _ = denoise_node(NODE, guider, sampler_name, "sampler_name",
                                          [("positive", positive), ("negative", negative)], noisy_latent, steps,
                                          scheduler, step_mode, cls.hidden,
                                          (tiling, tile_size, tile_overlap, tile_batch))
        return io.NodeOutput(out, trajectory)


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
        return checks.first_problem(*schedule_checks(CUSTOM, scheduler, step_mode))

    @classmethod
    def execute(cls, guider, sampler, noisy_latent, steps, scheduler, step_mode, tiling="off",
                tile_size=TILING_OFF.tile_px, tile_overlap=TILING_OFF.overlap_px,
                tile_batch=TILING_OFF.per_call) -> io.NodeOutput:
        checks.refuse(*schedule_checks(CUSTOM, scheduler, step_mode))
        conds = getattr(guider, "original_conds", {}).values()  # the guider's conditioning, by the node's input name
        out, trajectory, sigmas = denoise_node(CUSTOM, guider, sampler, "sampler",
                                               [("guider", [e for c in conds for e in c])], noisy_latent, steps,
                                               scheduler, step_mode, cls.hidden,
                                               (tiling, tile_size, tile_overlap, tile_batch))
        return io.NodeOutput(out, trajectory, sigmas)
