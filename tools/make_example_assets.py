"""Draws the example workflows' assets with Pillow, deterministically.

    python tools/make_example_assets.py          the sample input, the img2img thumbnail and the
                                                 strength-sweep example (tools/example_assets/basic.py)
    python tools/make_example_assets.py --edit   the stroke painting and its mask, and the strokes and
                                                 repeats examples (tools/example_assets/editing.py);
                                                 the repeats use the sample, so run the first one first
    python tools/make_example_assets.py --flowedit  the FlowEdit example, from the img2img example's files
                                                 (tools/example_assets/flowedit.py)
    python tools/make_example_assets.py --video  the input video (PyAV) and the video example on Wan 2.1
                                                 (tools/example_assets/video.py)
    python tools/make_example_assets.py --thumbnails   every example's thumbnail only (tests/test_thumbnails.py
                                                 checks they are today's and that their numbers are the workflows')

After rewriting a UI workflow, run `python tools/fit_templates.py` (the node sizes the frontends measured, groups
around their nodes, notes clear of them). Each example is written as its UI workflow (example_workflows/), its API twin (example_workflows/api/) and
its thumbnail (.jpg); the pictures they load go to example_workflows/input/. What both share (paths, the
checkpoint, prompts, colours, drawing helpers) lives in tools/example_assets/common.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__:  # imported as tools.make_example_assets (the tests)
    from .example_assets.basic import basic_examples, basic_thumbnails, sweep_workflows
    from .example_assets.common import EXAMPLES, STEP_COLOURS, report, save_thumbnail
    from .example_assets.editing import edit_examples, edit_thumbnails
    from .example_assets.flowedit import flowedit_examples, flowedit_thumbnails
    from .example_assets.video import video_examples, video_thumbnails
else:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from example_assets.basic import basic_examples, basic_thumbnails, sweep_workflows
    from example_assets.common import EXAMPLES, STEP_COLOURS, report, save_thumbnail
    from example_assets.editing import edit_examples, edit_thumbnails
    from example_assets.flowedit import flowedit_examples, flowedit_thumbnails
    from example_assets.video import video_examples, video_thumbnails

__all__ = ["STEP_COLOURS", "basic_examples", "edit_examples", "flowedit_examples", "main", "sweep_workflows", "thumbnails",
           "video_examples"]


def thumbnails() -> dict:
    """Every example's thumbnail as the tool draws it today, drawn when called: {name: () -> Image}. An example
    workflow added to example_workflows/ registers its thumbnail here (tests/test_packaging.py checks each one's
    numbers against its workflow)."""
    return {**basic_thumbnails(), **edit_thumbnails(), **flowedit_thumbnails(), **video_thumbnails()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edit", action="store_true",
                        help="write the editing examples (strokes, repeats) instead of the basic ones")
    parser.add_argument("--flowedit", action="store_true", help="write the FlowEdit example instead of the basic ones")
    parser.add_argument("--video", action="store_true", help="write the video example instead of the basic ones")
    parser.add_argument("--thumbnails", action="store_true",
                        help="redraw every example's thumbnail (.jpg) only, from today's code")
    args = parser.parse_args(argv)
    if args.thumbnails:
        written = []
        for name, draw in thumbnails().items():
            save_thumbnail(draw(), EXAMPLES / f"{name}.jpg")
            written.append(EXAMPLES / f"{name}.jpg")
        report(written)
        return
    report(edit_examples() if args.edit else video_examples() if args.video else
           flowedit_examples() if args.flowedit else basic_examples())


if __name__ == "__main__":
    main()
