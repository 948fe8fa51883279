"""Soak machinery: N consecutive prompts through one real ComfyUI server on loopback, with varying image sizes,
strengths, samplers, schedulers and step modes; checks that every prompt succeeds and its PNG is written and
readable at the right size, that the server's resident memory (VmRSS) after warm-up grows by less than 5 %, and
that no temporary file is left behind (the host's temp folder, TMPDIR, the workspace).

bench/soak.py is the command (200 prompts, results in bench/results/soak.md); tests/test_soak.py runs 20.
"""
import math
import pathlib
import statistics
import time

import numpy as np
from PIL import Image

from harness.host import SAMPLE_IMAGE
from harness.server import PromptFailed

# Lengths 7, 5, 9, 2, 3, 4 are pairwise coprime enough that the combinations keep changing.
SIZES = [(64, 48), (72, 56), (61, 47), (96, 64), (33, 17), (48, 80), (1, 1)]
STRENGTHS = [0.6, 0.0, 0.35, 1.0, 0.8]
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc", "ddim", "heun", "lms", "dpmpp_sde"]
STEP_MODES = ["proportional", "all"]
SCHEDULERS = ["normal", "karras", "simple"]
STEPS = [3, 4, 5, 2]
GROWTH_LIMIT = 0.05


def soak_prompt(ckpt: str, i: int) -> tuple[dict, tuple[int, int]]:
    """Prompt number `i` and the (width, height) its picture must have."""
    width, height = SIZES[i % len(SIZES)]
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a harbour, picture {i % 3}", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "load": {"class_type": "LoadImage", "inputs": {"image": SAMPLE_IMAGE.name}},
        "img": {"class_type": "ImageScale", "inputs": {"image": ["load", 0], "upscale_method": "bilinear",
                                                       "width": width, "height": height, "crop": "disabled"}},
        "enc": {"class_type": "SDEditEncode", "inputs": {"image": ["img", 0], "vae": ["ckpt", 2]}},
        "noise": {"class_type": "SDEditAddNoise", "inputs": {"model": ["ckpt", 0], "latent": ["enc", 0],
                                                             "strength": STRENGTHS[i % len(STRENGTHS)], "seed": i}},
        "den": {"class_type": "SDEditSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "noisy_latent": ["noise", 0],
            "steps": STEPS[i % len(STEPS)], "cfg": 6.0, "sampler_name": SAMPLERS[i % len(SAMPLERS)],
            "scheduler": SCHEDULERS[i % len(SCHEDULERS)], "step_mode": STEP_MODES[i % len(STEP_MODES)]}},
        "dec": {"class_type": "SDEditDecode", "inputs": {"latent": ["den", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": f"soak/{i:04d}"}},
    }
    return prompt, (width, height)


def rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def workspace_files(base: pathlib.Path) -> set[str]:
    """Files in the workspace that are not outputs or the server's own log and settings."""
    skip = ("output/", "user/", "comfyui.log")
    return {str(p.relative_to(base)) for p in base.rglob("*")
            if p.is_file() and not str(p.relative_to(base)).startswith(skip)}


def start_server(checkpoint: pathlib.Path, workdir: pathlib.Path, comfyui: pathlib.Path):
    """A ComfyServer in a fresh workspace under `workdir`, its TMPDIR inside the workspace."""
    from harness import ComfyServer, prepare_workspace
    base = prepare_workspace(workdir / "comfyui", checkpoint, [SAMPLE_IMAGE])
    (base / "tmp").mkdir(exist_ok=True)
    return ComfyServer(comfyui, base, env={"TMPDIR": str(base / "tmp")})


def run_soak(server, ckpt: str, prompts: int = 200, max_seconds: float = 3600, warmup: int | None = None,
             log=print) -> dict:
    """Runs the prompts through `server` one after the other; returns the figures and the problems found."""
    warmup = warmup if warmup is not None else max(5, min(len(SIZES) * 2, prompts // 10))
    files_before = workspace_files(server.base)
    problems, seconds, rss = [], [], {}
    start = time.monotonic()
    done = 0
    for i in range(prompts):
        if time.monotonic() - start > max_seconds:
            log(f"time limit reached after {done} prompts")
            break
        prompt, (width, height) = soak_prompt(ckpt, i)
        t0 = time.monotonic()
        try:
            pngs = server.run_images(prompt)
        except PromptFailed as error:
            if error.entry is not None:  # it ran, and failed
                seconds.append(time.monotonic() - t0)
                done += 1
            problems.append(f"prompt {i}: {error}")
            continue
        seconds.append(time.monotonic() - t0)
        done += 1
        if len(pngs) != 1:
            problems.append(f"prompt {i}: {len(pngs)} pictures saved")
            continue
        with Image.open(pngs[0]) as png:
            pixels = np.asarray(png.convert("RGB"))
        if pixels.shape != (height, width, 3):
            problems.append(f"prompt {i}: picture {pixels.shape}, expected {(height, width, 3)}")
        if i + 1 == warmup:
            rss["warm"] = rss_bytes(server.process.pid)
        rss["peak"] = max(rss.get("peak", 0), rss_bytes(server.process.pid))
        if (i + 1) % 20 == 0:
            log(f"{i + 1} prompts, median {statistics.median(seconds):.2f} s, "
                f"RSS {rss_bytes(server.process.pid) / 2**20:.0f} MiB")
    rss["end"] = rss_bytes(server.process.pid)
    rss.setdefault("warm", rss["end"])
    left = sorted(workspace_files(server.base) - files_before)
    if left:
        problems.append(f"files left behind: {left[:10]}")
    outputs = sorted((server.base / "output" / "soak").glob("*.png"))
    if len(outputs) != done:
        problems.append(f"{len(outputs)} output files for {done} prompts")
    growth = rss["end"] / rss["warm"] - 1
    if growth >= GROWTH_LIMIT:
        problems.append(f"resident memory grew {growth:.1%} after warm-up (limit {GROWTH_LIMIT:.0%})")
    if not server.alive():
        problems.append("the server died")
    return {"prompts": done, "warmup": warmup, "rss_warm": rss["warm"], "rss_end": rss["end"],
            "rss_peak": rss["peak"], "growth": growth, "median_s": statistics.median(seconds) if seconds else math.nan,
            "total_s": time.monotonic() - start, "outputs": len(outputs), "left_behind": left, "problems": problems}


def table(figures: dict) -> str:
    mib = 2 ** 20
    rows = [
        ("prompts run (all succeeded)" if not figures["problems"] else "prompts run", f"{figures['prompts']}"),
        ("pictures written and readable at the right size", f"{figures['outputs']}"),
        ("warm-up prompts", f"{figures['warmup']}"),
        ("server VmRSS after warm-up", f"{figures['rss_warm'] / mib:.0f} MiB"),
        ("server VmRSS at the end", f"{figures['rss_end'] / mib:.0f} MiB"),
        ("growth after warm-up (limit 5 %)", f"{figures['growth']:+.2%}"),
        ("server VmRSS peak", f"{figures['rss_peak'] / mib:.0f} MiB"),
        ("files left in temp/, TMPDIR and the workspace", f"{len(figures['left_behind'])}"),
        ("median seconds per prompt", f"{figures['median_s']:.2f}"),
        ("total seconds", f"{figures['total_s']:.0f}"),
    ]
    lines = ["| measure | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]]
    if figures["problems"]:
        lines += ["", "Problems:", *[f"- {p}" for p in figures["problems"]]]
    return "\n".join(lines)
