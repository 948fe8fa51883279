"""Each example's thumbnail is what the asset tool draws today, and the numbers written on it are its workflow's:
the strength, steps, cfg and scale that the thumbnail names are the ones the workflow runs."""
import json
import re

import numpy as np
import pytest
from conftest import REPO
from PIL import Image, ImageDraw

EXAMPLES = REPO / "example_workflows"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))


@pytest.fixture(scope="module")
def drawn():
    """{name: (the thumbnail drawn now, every text drawn on it)}, from tools/make_example_assets.py."""
    from tools import make_example_assets
    texts: list[str] = []
    original = ImageDraw.ImageDraw.text

    def recording(self, xy, text, *args, **kwargs):
        texts.append(str(text))
        return original(self, xy, text, *args, **kwargs)

    out = {}
    ImageDraw.ImageDraw.text = recording
    try:
        for name, draw in make_example_assets.thumbnails().items():
            texts.clear()
            out[name] = (draw(), " | ".join(texts))
    finally:
        ImageDraw.ImageDraw.text = original
    return out


def workflow_numbers(name: str) -> dict[str, set]:
    """The numbers a thumbnail may name, from the API twin: strengths, steps, cfg, scale."""
    api = json.loads((EXAMPLES / "api" / f"{name}.json").read_text())
    numbers = {"strength": set(), "steps": set(), "cfg": set(), "scale": set()}
    for node in api.values():
        inputs = node["inputs"]
        if "strength" in inputs and not isinstance(inputs["strength"], list):
            numbers["strength"].add(float(inputs["strength"]))
        if isinstance(inputs.get("strengths"), str):
            numbers["strength"] |= {float(v) for v in inputs["strengths"].split(",")}
        for key in ("steps", "cfg"):
            if key in inputs and not isinstance(inputs[key], list):
                numbers[key].add(float(inputs[key]))
        if "scale_by" in inputs:
            numbers["scale"].add(float(inputs["scale_by"]))
    return numbers


@pytest.mark.parametrize("name", NAMES)
def test_the_asset_tool_draws_a_thumbnail_for_every_example(name, drawn):
    assert name in drawn, f"tools/make_example_assets.py thumbnails() draws no thumbnail for {name}"


@pytest.mark.parametrize("name", NAMES)
def test_a_thumbnails_numbers_are_its_workflows(name, drawn):
    text = drawn[name][1]
    numbers = workflow_numbers(name)
    claims = {
        "strength": re.findall(r"(?:strength|SDEdit at|at strength)\s+(\d*\.\d+)", text),
        "steps": re.findall(r"(\d+) steps", text),
        "cfg": re.findall(r"cfg (\d+(?:\.\d+)?)", text),
        "scale": re.findall(r"(\d+(?:\.\d+)?)x\b", text),
    }
    assert any(claims.values()) or name == "sdedit_region", f"{name}: no number found on the thumbnail: {text}"
    for key, values in claims.items():
        for value in values:
            assert float(value) in numbers[key], (f"{name}.jpg says {key} {value}; the workflow runs "
                                                  f"{sorted(numbers[key])}. Fix tools/example_assets and rerun "
                                                  f"tools/make_example_assets.py. Thumbnail text: {text}")


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_thumbnail_is_todays(name, drawn, tmp_path):
    """The .jpg in example_workflows/ is what the tool draws now, saved as the tool saves it: rerun
    `python tools/make_example_assets.py --thumbnails` after a change."""
    from tools.example_assets.common import save_thumbnail
    save_thumbnail(drawn[name][0], tmp_path / "now.jpg")
    with Image.open(EXAMPLES / f"{name}.jpg") as committed, Image.open(tmp_path / "now.jpg") as now:
        have = np.asarray(committed.convert("RGB"), dtype=np.float32)
        today = np.asarray(now.convert("RGB"), dtype=np.float32)
    assert have.shape == today.shape
    assert np.abs(have - today).mean() < 0.5, f"{name}.jpg is not what tools/make_example_assets.py draws today"
