"""Strength maps against the exact SDEdit answer: this pack's rule (each part joins at its own level) and the
host's Differential Diffusion on the same map, for 2, 5 and 50 distinct map values at 10 and 30 steps; then
the seam where a kept part meets an edited one, after Decode.

The model is the closed-form denoiser of Gaussian data (tests/test_sdedit_gaussian.py), which acts on each
latent element on its own, so every band has an exact answer: the probability-flow ODE from its own level.
Seam: the same denoiser on a model whose latent is the picture itself (the host's "pixel_space" VAE and its
3-channel pixel latent format, ChromaRadiance's), so Decode's output has no VAE round-trip error and any jump at
the keep boundary is the rule's own. The picture is bench/vae.py's smooth test picture; the map keeps the left
third and edits the rest, either at once (a binary mask) or through a ramp (a feather: map values rising from 0
to 1 over RAMP pixels). As bench/vae.py measures tile borders: c[j] = mean over rows and channels of
|p[:, j+1] - p[:, j]|; "boundary" = c where the kept part ends (the largest of the three columns around it),
"away" = the largest c elsewhere, and the input's own c at the same place.
Prints Markdown tables. Usage: COMFYUI_PATH=... .venv/bin/python -P bench/strength_map.py
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
from sdedit_img2img.nodes.decode import SDEditDecode  # noqa: E402
from sdedit_img2img.nodes.encode import SDEditEncode  # noqa: E402
from sdedit_img2img.nodes.add_noise import SDEditAddNoise  # noqa: E402
from sdedit_img2img.nodes.denoise import SDEditDenoise  # noqa: E402
from sdedit_img2img.nodes.sdedit_math import sdedit_sigmas, start_sigma  # noqa: E402

MU, S, STRENGTH, SEED = 0.5, 0.8, 0.8, 3
SIZE, RAMP = 96, 24


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
    seams(gaussian, cond)


def seams(gaussian, cond):
    import comfy.latent_formats
    from vae import smooth_picture
    pixel_model = gaussian.clone()
    pixel_model.add_object_patch("latent_format", comfy.latent_formats.ChromaRadiance())
    pixel_vae = host_nodes.VAELoader().load_vae("pixel_space")[0]
    image = smooth_picture(SIZE, torch)
    kept = SIZE // 3
    hard = torch.ones(1, SIZE, SIZE)
    hard[:, :, :kept] = 0.0
    ramp = hard.clone()
    ramp[:, :, kept:kept + RAMP] = torch.linspace(1.0 / RAMP, 1.0, RAMP)

    def columns(p):
        return (p[0, :, 1:] - p[0, :, :-1]).abs().mean(dim=(0, 2))
    near = {kept - 2, kept - 1, kept}  # the jump between pixels kept-1 and kept is index kept-1
    own = columns(image)
    print()
    print("| map | strength | boundary | away | boundary/away | input's own at the boundary | "
          "kept pixels equal to the input |")
    print("|---|---|---|---|---|---|---|")
    for name, mask in (("binary (keep | edit)", hard), (f"ramp over {RAMP} px (feather)", ramp)):
        for strength in (0.3, 0.6):
            with torch.inference_mode():
                latent = SDEditEncode.execute(image, pixel_vae, mask=mask)[0]
                noisy = SDEditAddNoise.execute(pixel_model, latent, strength, SEED)[0]
                out = SDEditDenoise.execute(pixel_model, cond, cond, noisy, 20, 1.0, "euler", "normal",
                                            "proportional")[0]
                decoded = SDEditDecode.execute(out, pixel_vae)[0]
            c = columns(decoded)
            boundary = max(float(c[j]) for j in near)
            away = max(float(c[j]) for j in range(len(c)) if j not in near)
            exact = bool(torch.equal(decoded[:, :, :kept], image[:, :, :kept]))
            print(f"| {name} | {strength} | {boundary:.4f} | {away:.4f} | {boundary / away:.2f} | "
                  f"{max(float(own[j]) for j in near):.4f} | {exact} |")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "bench"))
    main()
