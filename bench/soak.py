"""Soak: N consecutive prompts through one real ComfyUI server on loopback, with varying image sizes,
strengths, samplers, schedulers and step modes. Checks that every prompt succeeds and its PNG is written
and readable at the right size, that the server's resident memory (VmRSS) after warm-up grows by less
than 5 %, and that no temporary file is left behind (the host's temp folder, TMPDIR, the workspace).

    python bench/soak.py                       # 200 prompts (at most 60 minutes), table to stdout
    python bench/soak.py --prompts 50 --out bench/results/soak.md

The machinery is harness/soak.py; tests/test_soak.py runs it with 20 prompts. Bounded in count and time; loopback only.
"""
import argparse
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the harness package
from harness.soak import SAMPLERS, SCHEDULERS, SIZES, STEP_MODES, STEPS, STRENGTHS, run_soak, start_server, table  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=60)
    parser.add_argument("--out", type=pathlib.Path, help="also write the table (Markdown) here")
    args = parser.parse_args(argv)
    import harness
    from harness import checkpoint as test_checkpoint
    comfyui = harness.setup_host()
    checkpoint = test_checkpoint.ensure_checkpoint()
    with tempfile.TemporaryDirectory(prefix="sdedit-soak-") as workdir:
        with start_server(checkpoint, pathlib.Path(workdir), comfyui) as server:
            figures = run_soak(server, checkpoint.name, args.prompts, args.max_minutes * 60)
    text = (f"Soak: {figures['prompts']} consecutive prompts through one `main.py --cpu` server (sizes "
            f"{', '.join(f'{w}x{h}' for w, h in SIZES)}; strengths {STRENGTHS}; samplers {', '.join(SAMPLERS)}; "
            f"schedulers {', '.join(SCHEDULERS)}; step modes {', '.join(STEP_MODES)}; steps {STEPS}).\n\n"
            + table(figures) + "\n")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
