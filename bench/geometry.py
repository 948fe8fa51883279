"""The long run of the geometry properties (tests/test_geometry_properties.py, issue #27): CASES drawn cases
(2,000 by default, Hypothesis with a fixed seed) through Encode -> (Repeat Latent Batch) -> Add Noise -> Denoise
-> Decode on the host's runtime, with harness/geometry.py's stand-ins (a small comfy.sd.VAE of factor 8, the
closed-form Gaussian denoiser). Counts how many ran, were refused by name, and held; prints each violation
and a Markdown table (bench/results/geometry.md).
Usage: COMFYUI_PATH=... .venv/bin/python -P bench/geometry.py [CASES] [SEED]
(SEED: another fixed seed, for a second run alongside the first that draws other cases)
"""
import collections
import logging
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import harness  # noqa: E402

harness.setup_host()
harness.load_pack()

import comfy.utils  # noqa: E402
import nodes as host_nodes  # noqa: E402
from harness import checkpoint, geometry  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402


def main(count: int, other_seed: int | None = None) -> None:
    logging.disable(logging.WARNING)
    comfy.utils.PROGRESS_BAR_ENABLED = False
    model, clip, _ = harness.load_checkpoint(checkpoint.ensure_checkpoint())[:3]
    cond = host_nodes.CLIPTextEncode().encode(clip, "")[0]
    vae = geometry.tiny_vae()
    tally, seconds, broken = collections.Counter(), [], []
    started = time.time()

    @settings(max_examples=count, derandomize=other_seed is None, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=geometry.cases())
    def one(case):
        t = time.time()
        out = geometry.run(case, model, cond, vae)
        seconds.append(time.time() - t)
        problems = geometry.violations(case, out)
        kind = "crop_to_mask" if case.crop_to_mask else f"size_mode {case.size_mode}"
        tally[(kind, "refused by name" if out.refusal else "ran")] += 1
        tally[("all", "held" if not problems else "broke")] += 1
        if problems:
            broken.append((case, problems))
            print("BROKE", case, problems, flush=True)
        if len(seconds) % 100 == 0:
            print(f"{len(seconds)} cases, {len(broken)} broke, {time.time() - started:.0f} s", flush=True)

    (one if other_seed is None else seed(other_seed)(one))()
    print()
    print("| cases | held | broke | refused by name | wall time | median s/case | slowest s |")
    print("|---|---|---|---|---|---|---|")
    refused = sum(v for (_, what), v in tally.items() if what == "refused by name")
    ordered = sorted(seconds)
    print(f"| {len(seconds)} | {tally[('all', 'held')]} | {tally[('all', 'broke')]} | {refused} | "
          f"{time.time() - started:.0f} s | {ordered[len(ordered) // 2]:.2f} | {ordered[-1]:.1f} |")
    print()
    print("| kind | ran | refused by name |")
    print("|---|---|---|")
    for kind in sorted({k for k, _ in tally if k != "all"}):
        print(f"| {kind} | {tally[(kind, 'ran')]} | {tally[(kind, 'refused by name')]} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else None)
