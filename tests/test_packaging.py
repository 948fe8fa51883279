"""What ComfyUI-Manager, the Comfy Registry and saved workflows rely on."""
import ast
import asyncio
import re
import tomllib

import pytest
import sdedit_img2img
from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACK_SOURCES = [REPO / "__init__.py", *sorted((REPO / "nodes").glob("*.py"))]

# The public contract: saved workflows address nodes by id and inputs by name.
CONTRACT = {
    "SDEditEncode": ("SDEdit 1 · Encode", ["image", "vae", "mask", "mask_feather", "size_mode",
                                           "crop_to_mask", "crop_size", "crop_padding", "crop_factor", "masked_content"], ["latent"]),
    "SDEditAddNoise": ("SDEdit 2 · Add Noise", ["model", "latent", "strength", "seed"], ["noisy_latent"]),
    "SDEditSampler": ("SDEdit 3 · Denoise", ["model", "positive", "negative", "noisy_latent", "steps", "cfg",
                                             "sampler_name", "scheduler", "step_mode", "tiling", "tile_size",
                                             "tile_overlap", "tile_batch"], ["latent", "trajectory"]),
    "SDEditSamplerCustom": ("SDEdit 3 · Denoise (Custom)", ["guider", "sampler", "noisy_latent", "steps", "scheduler",
                                                            "step_mode", "tiling", "tile_size", "tile_overlap",
                                                            "tile_batch"], ["latent", "trajectory", "sigmas"]),
    "SDEditFlowEdit": ("SDEdit 3 · FlowEdit", ["model", "source_positive", "target_positive", "negative", "noisy_latent",
                                               "steps", "source_cfg", "target_cfg", "scheduler", "step_mode",
                                               "average", "sample_last", "tiling", "tile_size", "tile_overlap",
                                               "tile_batch"], ["latent", "trajectory"]),
    "SDEditDecode": ("SDEdit 4 · Decode", ["latent", "vae", "color_anchor"], ["image"]),
    "SDEditStrengthSweep": ("SDEdit · Strength Sweep", ["image", "model", "vae", "positive", "negative", "strengths",
                                                        "seed", "steps", "cfg", "sampler_name", "scheduler",
                                                        "step_mode"], ["grid", "table"]),
}


@pytest.fixture(scope="module")
def node_classes():
    extension = asyncio.run(sdedit_img2img.comfy_entrypoint())
    return {cls.define_schema().node_id: cls for cls in asyncio.run(extension.get_node_list())}


def test_node_ids_names_and_inputs_are_the_public_contract(node_classes):
    assert set(node_classes) == set(CONTRACT)
    for node_id, (display_name, inputs, outputs) in CONTRACT.items():
        schema = node_classes[node_id].define_schema()
        assert schema.display_name == display_name
        assert [i.id for i in schema.inputs] == inputs
        assert [o.id for o in schema.outputs] == outputs


def test_every_node_is_described_and_every_socket_has_a_tooltip(node_classes):
    categories = set()
    for node_id, cls in node_classes.items():
        schema = cls.define_schema()
        categories.add(schema.category)
        assert len(schema.description) > 40, node_id
        for socket in schema.inputs + schema.outputs:
            assert socket.tooltip, f"{node_id}.{socket.id} has no tooltip"
        assert (REPO / "js" / "docs" / f"{node_id}.md").is_file(), f"no help page for {node_id}"
    assert categories == {"SDEdit"}


def test_entry_point_registers_the_web_directory():
    assert sdedit_img2img.WEB_DIRECTORY == "./js"
    assert (REPO / "js").is_dir()


def test_pyproject_has_what_the_registry_reads():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert all(comfy[key] for key in ("PublisherId", "DisplayName"))
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    # No invented location: the repository and Icon URLs are added once the pack's home is known.
    assert "urls" not in project and "Icon" not in comfy
    assert not [d for d in project["dependencies"] if re.match(r"torch", d)], "never install torch"



def test_requirements_txt_mirrors_the_dependencies():
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line] == PYPROJECT["project"]["dependencies"]


def test_license_is_gpl3_like_the_host():
    assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text()[:200]
    assert "Version 3" in (REPO / "LICENSE").read_text()[:200]


def test_the_pack_does_no_network_no_subprocess_no_eval():
    forbidden_modules = {"socket", "subprocess", "urllib", "http", "requests", "aiohttp", "httpx"}
    for path in PACK_SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module, [a.name for a in node.names]) == ("aiohttp", ["web"]):
                names = []  # the host's server types, to answer the canvas' read-only route: no client I/O
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = []
            assert not {n.split(".")[0] for n in names} & forbidden_modules, (path, names)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "__import__"), (path, node.lineno)


def test_nodes_use_the_hosts_dated_node_api_where_it_has_one():
    import importlib

    from sdedit_img2img.nodes import common
    try:
        dated = importlib.import_module("comfy_api.v0_0_2")
    except ImportError:
        dated = importlib.import_module("comfy_api.latest")
    assert common.io is dated.io and common.ComfyExtension is dated.ComfyExtension
    for path in PACK_SOURCES:  # one place picks the API: no node module imports `latest` itself
        assert "comfy_api.latest" not in path.read_text() or path.name == "common.py", path
