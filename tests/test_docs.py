"""Every node the pack registers has a help page (js/docs/<NodeId>.md) that names each of its inputs and
outputs, read from the node's own schema (so a new input or node without its help fails here); the README's
claims of tested releases are docs/compat.md's measured tables."""
import asyncio
import re

import pytest
from conftest import REPO

import sdedit_img2img


def _nodes():
    extension = asyncio.run(sdedit_img2img.comfy_entrypoint())
    return asyncio.run(extension.get_node_list())


def _names(schema):
    inputs = [i.id for i in schema.inputs]
    outputs = [o.display_name or o.id for o in schema.outputs]
    return inputs, outputs


@pytest.mark.parametrize("node", _nodes(), ids=lambda n: n.define_schema().node_id)
def test_every_node_has_a_help_page_naming_its_inputs_and_outputs(node):
    schema = node.define_schema()
    page = REPO / "js" / "docs" / f"{schema.node_id}.md"
    assert page.is_file(), f"{schema.node_id} has no help page {page}"
    text = page.read_text()
    inputs, outputs = _names(schema)
    assert inputs and outputs, schema.node_id
    missing = [n for n in inputs + outputs if not re.search(rf"\*\*{re.escape(n)}\*\*|`{re.escape(n)}`", text)]
    assert not missing, f"{page} does not name (in **bold** or `code`) these inputs/outputs of the schema: {missing}"
    assert "## Inputs" in text and re.search(r"## Outputs?", text), f"{page} lacks Inputs/Output sections"


def test_the_canvas_colours_are_the_readme_figures():
    """Each registered node whose display name carries a step ("SDEdit 3 · Denoise (Custom)": step 3) has a colour
    in js/sdedit.js, and no other node has one; its fill is that step's box in the example thumbnail."""
    from tools import make_example_assets
    script = (REPO / "js" / "sdedit.js").read_text()
    table = script[script.index("export const STEP_COLOURS = {"):]
    table = table[:table.index("};")]
    colours = dict(re.findall(r'(\w+): \{ color: "#[0-9a-f]{6}", bgcolor: "#([0-9a-f]{6})" \}', table))
    steps = {}
    for node in _nodes():
        schema = node.define_schema()
        found = re.match(r"SDEdit (\d) · ", schema.display_name)
        if found:
            steps[schema.node_id] = int(found[1])
    assert len(set(steps.values())) == 4 and "SDEditSamplerCustom" in steps, steps
    assert set(colours) == set(steps), (colours, steps)
    for node_id, step in steps.items():
        rgb = tuple(int(colours[node_id][i:i + 2], 16) for i in (0, 2, 4))
        assert rgb == make_example_assets.STEP_COLOURS[step][0], (node_id, step)


def test_the_readmes_tested_releases_are_those_that_passed_in_the_compat_tables():
    """README's "pass on each of ..." names exactly the releases whose node-level and server suites and every
    family passed in docs/compat.md (read by tools/compat.py, which writes it), and its count of in-process tests
    is the table's range. A family may be "not run" only on the releases before it was first run (the host lacks
    it there), so a family that stopped being run cannot hide behind the claim."""
    from tools.compat import read_families, read_rows, version_key
    readme = (REPO / "README.md").read_text()
    claim = re.search(r"pass on each of (.*?)\(`requires-comfyui = \">=(\d+\.\d+\.\d+)\"`", readme, re.S)
    assert claim, "README's Install section no longer states the tested releases as this test reads them"
    named = re.findall(r"\b\d+\.\d+\.\d+\b", claim[1])
    table = REPO / "docs" / "compat.md"
    releases, (names, families) = read_rows(table), read_families(table)
    ordered = sorted(families, key=version_key)
    for name in names:
        cells = [families[v][name] for v in ordered]
        ran = [c != "not run" for c in cells]
        assert any(ran) and ran == sorted(ran), f"family {name}: not run after it ran: {cells}"
    passed = {v for v, row in releases.items()
              if all(row[suite].startswith("passed") for suite in ("node", "server"))
              and v in families and all(c.startswith("passed") or c == "not run" for c in families[v].values())}
    assert set(named) == passed and len(named) == len(passed)
    # "every in-process test (A to B, ...)": the fewest and the most node-level tests of those releases
    counts = sorted(int(re.search(r"(\d+) tests", releases[v]["node"])[1]) for v in named)
    told = re.search(r"every in-process test \((\d+) to (\d+),", readme)
    assert told and (int(told[1]), int(told[2])) == (counts[0], counts[-1]), (told and told.group(0), counts)
    assert claim[2] == min(named, key=version_key) == re.search(r'requires-comfyui = ">=([\d.]+)"',
                                                                (REPO / "pyproject.toml").read_text())[1]
