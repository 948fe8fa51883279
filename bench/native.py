"""This pack's four-node chain against the host's native img2img (VAE Encode -> KSampler denoise -> VAE Decode).

    python bench/native.py [--ckpt PATH] [--runs 5] [--size 512x384]
        -> prints the tables, writes bench/results/native.md and bench/results/native.png

One process, one model load: both chains share the loaded checkpoint, the prompt's conditioning and
the picture, and run alternately (pack, native, native, pack, ...) so drift hurts both alike.
- Equal model calls: the pack's proportional mode at steps=20 runs round(s*20) steps; the native chain
  gets KSampler(steps=round(s*20), denoise=s), which makes the same number of calls.
- Same steps: KSampler(steps=20, denoise=s) makes 20 calls at any s; that is SDEdit's saving.
Model calls are counted by a unet function wrapper on the model (the same wrapper on both chains), VAE
passes by wrapping the VAE's encode/decode, model loads by wrapping ModelPatcher.load.
Peak memory: VmHWM of /proc/self/status, reset to the current RSS by writing 5 to /proc/self/clear_refs
before each chain, so each run's peak is that chain's own; the increment over the RSS at its start is
reported too (the loaded model dominates the absolute figure).
Import and registration: a fresh interpreter that has imported the host first times importing the pack
and running comfy_entrypoint() + get_node_list().
"""
import argparse
import datetime
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
import harness  # noqa: E402

RESULTS = harness.REPO / "bench" / "results"

STRENGTHS = (0.2, 0.4, 0.6, 0.8)
STEPS, CFG, SEED, SAMPLER, SCHEDULER = 20, 7.0, 42, "euler", "normal"
PROMPT, NEGATIVE = "a watercolour painting of a lighthouse at dusk", "blurry, low quality"


def rss_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


class Counters:
    """Counts U-Net calls (and their batch), VAE passes and model loads while a chain runs."""

    def __init__(self, model, vae):
        import comfy.model_patcher
        self.unet, self.encodes, self.decodes, self.loads = [], 0, 0, 0
        self.model = model.clone()

        def unet(apply_model, args):
            self.unet.append(args["input"].shape[0])
            return apply_model(args["input"], args["timestep"], **args["c"])
        self.model.set_model_unet_function_wrapper(unet)
        encode, decode = vae.encode, vae.decode

        def counted_encode(*a, **k):
            self.encodes += 1
            return encode(*a, **k)

        def counted_decode(*a, **k):
            self.decodes += 1
            return decode(*a, **k)
        vae.encode, vae.decode = counted_encode, counted_decode
        load = comfy.model_patcher.ModelPatcher.load

        def counted_load(patcher, *a, **k):
            self.loads += 1
            return load(patcher, *a, **k)
        comfy.model_patcher.ModelPatcher.load = counted_load

    def reset(self):
        self.unet, self.encodes, self.decodes, self.loads = [], 0, 0, 0

    def snapshot(self):
        return {"calls": len(self.unet), "batches": sorted(set(self.unet)), "encodes": self.encodes,
                "decodes": self.decodes, "loads": self.loads}


def pack_chain(model, vae, conds, image, strength):
    from sdedit_img2img.nodes.add_noise import SDEditAddNoise
    from sdedit_img2img.nodes.decode import SDEditDecode
    from sdedit_img2img.nodes.denoise import SDEditDenoise
    from sdedit_img2img.nodes.encode import SDEditEncode
    latent = SDEditEncode.execute(image, vae)[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, SEED)[0]
    out = SDEditDenoise.execute(model, *conds, noisy, STEPS, CFG, SAMPLER, SCHEDULER, "proportional")[0]
    return SDEditDecode.execute(out, vae)[0]


def native_chain(model, vae, conds, image, strength, steps):
    import nodes as host_nodes
    latent = host_nodes.VAEEncode().encode(vae, image)[0]
    out = host_nodes.KSampler().sample(model, SEED, steps, CFG, SAMPLER, SCHEDULER, *conds, latent, denoise=strength)[0]
    return host_nodes.VAEDecode().decode(vae, out)[0]


def measure(run, counters):
    """(seconds, peak RSS KiB, peak increment KiB, counts) of one run of a chain."""
    counters.reset()
    start_rss = rss_kib("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    peak = rss_kib("VmHWM")
    return seconds, peak, peak - start_rss, counters.snapshot()


def side_by_side(chains, counters, runs):
    """Warm-up, then `runs` timed rounds alternating the order; medians per chain."""
    results = {name: [] for name in chains}
    for run in chains.values():
        measure(run, counters)
    for i in range(runs):
        order = list(chains) if i % 2 == 0 else list(reversed(chains))
        for name in order:
            results[name].append(measure(chains[name], counters))
    summary = {}
    if len(chains) == 2:  # each round's two runs are neighbours in time: the ratio of each pair drifts less
        first, second = chains
        summary["paired_ratio"] = statistics.median(a[0] / b[0] for a, b in zip(results[first], results[second]))
    for name, rows in results.items():
        counts = rows[-1][3]
        assert all(r[3] == counts for r in rows), f"{name}: counts differ between runs"
        summary[name] = {"time": statistics.median(r[0] for r in rows), "peak": statistics.median(r[1] for r in rows),
                         "delta": statistics.median(r[2] for r in rows), **counts}
    return summary


def import_cost(repeats=5):
    """Median ms to import the pack and register its nodes, each in a fresh interpreter with the host imported."""
    code = f"""
import sys, time, asyncio, importlib.util
sys.path.insert(0, {str(harness.REPO)!r})
import harness
harness.setup_host()
# the host as main.py has it before loading custom nodes: its package utils first, the server (aiohttp) too
import utils.install_util, server, nodes, comfy.samplers, comfy.sample, comfy_api.latest, latent_preview
t0 = time.perf_counter()
pack = harness.load_pack()
ext = asyncio.run(pack.comfy_entrypoint())
node_list = asyncio.run(ext.get_node_list())
for node in node_list:
    node.GET_SCHEMA()
print((time.perf_counter() - t0) * 1000, len(node_list))
"""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        ms, count = out.stdout.split()[-2:]
        times.append(float(ms))
    return statistics.median(times), int(count)


def load_picture(size):
    import numpy as np
    import torch
    from PIL import Image
    w, h = size
    img = Image.open(harness.SAMPLE_IMAGE).convert("RGB").resize((w, h))
    return torch.from_numpy(np.asarray(img).astype("float32") / 255.0)[None]


def plot(equal, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, style in (("pack", "o-"), ("native", "s--")):
        ax.plot(STRENGTHS, [equal[s][name]["time"] for s in STRENGTHS], style, label=name)
    ax.set_xlabel("strength (denoise)")
    ax.set_ylabel("seconds per image (median)")
    ax.set_title("SDEdit pack vs native img2img, equal model calls")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    global STRENGTHS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="an SD1.5 checkpoint (default: the random-weight test checkpoint)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per chain and strength (default 5)")
    parser.add_argument("--size", default="96x64", help="picture size WxH (default 96x64, the tests' size: CPU minutes)")
    parser.add_argument("--out", default="native", help="result name under bench/results/")
    parser.add_argument("--strengths", default=",".join(map(str, STRENGTHS)), help="comma-separated (default 0.2-0.8)")
    parser.add_argument("--no-same-steps", action="store_true", help="skip the same-steps table (the slow one)")
    args = parser.parse_args()
    STRENGTHS = tuple(float(v) for v in args.strengths.split(","))
    import comfy.utils
    import torch

    import nodes as host_nodes
    comfy.utils.PROGRESS_BAR_ENABLED = False  # both chains alike; no console output in the timings
    w, h = (int(v) for v in args.size.split("x"))
    image = load_picture((w, h))
    ms_import, node_count = import_cost()
    model, clip, vae, ckpt = harness.load_checkpoint(args.ckpt)
    conds = tuple(host_nodes.CLIPTextEncode().encode(clip, text)[0] for text in (PROMPT, NEGATIVE))
    counters = Counters(model, vae)
    m = counters.model
    from sdedit_img2img.nodes.sdedit_math import proportional_step_count
    equal, same_steps = {}, {}
    with torch.inference_mode():
        zero = measure(lambda: pack_chain(m, vae, conds, image, 0.0), counters)[3]
        for s in STRENGTHS:
            n = proportional_step_count(s, STEPS)
            equal[s] = side_by_side({"pack": lambda s=s: pack_chain(m, vae, conds, image, s),
                                     "native": lambda s=s, n=n: native_chain(m, vae, conds, image, s, n)},
                                    counters, args.runs)
            print(s, equal[s], flush=True)
        report(args, ckpt, torch.__version__, (w, h), equal, same_steps, zero, ms_import, node_count)
        for s in () if args.no_same_steps else STRENGTHS:  # the same-steps table last: it is the slow one
            same_steps[s] = side_by_side({"native": lambda s=s: native_chain(m, vae, conds, image, s, STEPS)},
                                         counters, args.runs)["native"]
            print(s, same_steps[s], flush=True)
            report(args, ckpt, torch.__version__, (w, h), equal, same_steps, zero, ms_import, node_count)


def report(args, ckpt, torch_version, size, equal, same_steps, zero, ms_import, node_count):
    w, h = size
    lines = [f"# Pack vs native img2img on the CPU ({datetime.date.today()})", "",
             f"Machine: {machine()}, torch {torch_version}, load average {os.getloadavg()[0]:.1f} at the end "
             "(ratios measured side by side are what count). "
             f"Checkpoint: {ckpt.name}{' (random-weight SD1.5 test checkpoint: UNet two levels, ~107 M parameters; full-size CLIP-L and VAE)' if args.ckpt is None else ''}. "
             f"Picture {w}x{h}, prompt \"{PROMPT}\", {SAMPLER}/{SCHEDULER}, cfg {CFG}, seed {SEED}. "
             f"Median of {args.runs} timed runs after a warm-up, chains alternating. `python bench/native.py`.", "",
             "## Equal model calls (pack: steps 20, proportional; native: KSampler steps round(s*20), denoise s)", "",
             "| strength | model calls (batch) pack / native | VAE enc+dec pack / native | time pack s | time native s "
             "| time ratio | peak RSS pack MiB | peak RSS native MiB | peak ratio | peak increment pack / native MiB "
             "| median of paired time ratios |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in STRENGTHS:
        p, nv = equal[s]["pack"], equal[s]["native"]
        lines.append(f"| {s} | {p['calls']} ({p['batches']}) / {nv['calls']} ({nv['batches']}) | "
                     f"{p['encodes']}+{p['decodes']} / {nv['encodes']}+{nv['decodes']} | {p['time']:.3f} | "
                     f"{nv['time']:.3f} | {p['time'] / nv['time']:.3f} | {p['peak'] / 1024:.0f} | {nv['peak'] / 1024:.0f} | "
                     f"{p['peak'] / nv['peak']:.3f} | {p['delta'] / 1024:.0f} / {nv['delta'] / 1024:.0f} | "
                     f"{equal[s].get('paired_ratio', float('nan')):.3f} |")
    lines += ["", f"Model loads during the timed runs: pack {sum(equal[s]['pack']['loads'] for s in STRENGTHS)}, "
              f"native {sum(equal[s]['native']['loads'] for s in STRENGTHS)} (the model stays loaded between runs). "
              f"Strength 0: {zero['calls']} model calls, {zero['encodes']} encode, {zero['decodes']} decode.", "",
              "## Same steps (20): SDEdit's proportional step count against KSampler's denoise", "",
              "| strength | pack model calls | native model calls | time pack s | time native s | time ratio |",
              "|---|---|---|---|---|---|"]
    for s in same_steps:
        p, nv = equal[s]["pack"], same_steps[s]
        lines.append(f"| {s} | {p['calls']} | {nv['calls']} | {p['time']:.3f} | {nv['time']:.3f} | "
                     f"{p['time'] / nv['time']:.3f} |")
    lines += ["", "## Import and registration", "",
              f"Importing the pack and running comfy_entrypoint() + get_node_list() ({node_count} nodes, schemas "
              f"built) in a fresh interpreter that has imported the host: median {ms_import:.1f} ms of 5.", ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(text)
    plot(equal, RESULTS / f"{args.out}.png")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


harness.setup_host()
harness.load_pack()

if __name__ == "__main__":
    main()
