"""Strength maps against the exact SDEdit answer: this pack's rule (each part joins at its own level) and the
host's Differential Diffusion on the same map, for 2, 5 and 50 distinct map values at 10 and 30 steps.

The model is the closed-form denoiser of Gaussian data (tests/test_sdedit_gaussian.py), which acts on each
latent element on its own, so every band has an exact answer: the probability-flow ODE from its own level.
Prints a Markdown table. Usage: COMFYUI_PATH=... .venv/bin/python -P bench/strength_map.py
"""
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402

harness.setup_host()
harness.load_pack()

import comfy.sample  # noqa: E402
import nodes as host_nodes  # noqa: E402
import torch  # noqa: E402
from comfy_extras.nodes_custom_sampler import BasicGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced  # noqa: E402
from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion  # noqa: E402
from harness import checkpoint  # noqa: E402
from sdedit_img2img.nodes.add_noise import SDEditAddNoise  # noqa: E402
from sdedit_img2img.nodes.denoise import SDEditDenoise  # noqa: E402
from sdedit_img2img.nodes.sdedit_math import sdedit_sigmas, start_sigma  # noqa: E402

MU, S, STRENGTH, SEED = 0.5, 0.8, 0.8, 3


def main():
    model, clip, _ = harness.load_checkpoint(checkpoint.ensure_checkpoint())[:3]
    calls = []

    def ideal(apply_model, args):
        sigma = args["timestep"].view(-1, 1, 1, 1)
        calls.append(1)
        return MU + S ** 2 / (S ** 2 + sigma ** 2) * (args["input"] - MU)
    gaussian = model.clone()
    gaussian.set_model_unet_function_wrapper(ideal)
    cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    fmt, ms = gaussian.get_model_object("latent_format"), gaussian.get_model_object("model_sampling")
    print("| distinct map values | steps | rule | model calls | max error vs exact | mean error vs exact |")
    print("|---|---|---|---|---|---|")
    for count in (2, 5, 50):
        values = torch.linspace(1.0 / count, 1.0, count)
        width = 2 * count
        y = torch.linspace(-2, 2, 4 * 4 * width).view(1, 4, 4, width)
        cells = values.repeat_interleave(2).view(1, 1, 1, width).expand(1, 1, 4, width).clone()
        n = comfy.sample.prepare_noise(fmt.process_out(y), SEED)
        levels = torch.tensor([start_sigma(ms, float(v) * STRENGTH) for v in values]).repeat_interleave(2)
        levels = levels.view(1, 1, 1, width)
        exact = MU + S * (y - MU + levels * n) / (S ** 2 + levels ** 2) ** 0.5
        for steps in (10, 30):
            latent = {"samples": fmt.process_out(y), "noise_mask": cells}
            with torch.inference_mode():
                calls.clear()
                noisy = SDEditAddNoise.execute(gaussian, latent, STRENGTH, SEED)[0]
                ours = fmt.process_in(SDEditDenoise.execute(gaussian, cond, cond, noisy, steps, 1.0, "euler", "normal",
                                                            "proportional")[0]["samples"])
                ours_calls = len(calls)
                calls.clear()
                patched = DifferentialDiffusion.execute(gaussian)[0]
                sigmas = sdedit_sigmas(ms, "normal", steps, STRENGTH, start_sigma(ms, STRENGTH))
                dd = SamplerCustomAdvanced().sample(RandomNoise().get_noise(SEED)[0],
                                                    BasicGuider().get_guider(patched, cond)[0],
                                                    KSamplerSelect().get_sampler("euler")[0], sigmas, latent)[0]
                dd = fmt.process_in(dd["samples"])
                dd_calls = len(calls)
            for name, result, used in (("this pack (join at own level)", ours, ours_calls),
                                       ("host Differential Diffusion", dd, dd_calls)):
                error = (result - exact).abs()
                print(f"| {count} | {steps} | {name} | {used} | {float(error.max()):.4f} | {float(error.mean()):.4f} |")


if __name__ == "__main__":
    main()
