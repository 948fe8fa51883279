"""Puts the real ComfyUI runtime on sys.path (CPU only) and loads this pack as ComfyUI does, through the harness.

There is no fallback: without the runtime every test fails here, loudly (run scripts/setup.sh).
Fixtures shared by several test modules live here; helpers shared by several live in tests/helpers.py (and
what bench/ shares with the tests, in harness/). No test module imports another, nor bench/.

Every test module is in one tier, a pytest marker given here from TIERS (docs/development.md: what each tier
costs, and the quick command `-m "math or nodes"`). A module missing from TIERS stops the collection: add it.
"""
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness package; harness.setup_host() puts ComfyUI ahead of it

import harness  # noqa: E402  (after the sys.path line)
from harness import API_WORKFLOW, PACK, SAMPLE_IMAGE, UI_WORKFLOW  # noqa: E402, F401  (the tests import them from here)

COMFYUI = harness.setup_host()  # before comfy.model_management is imported anywhere
import nodes  # noqa: E402, F401  (the host's nodes.py, bound now: pytest may later put the repository, whose nodes/ would hide it, ahead on sys.path)
# Tests import host extras such as comfy_extras.nodes_latent directly. From 0.8.0 that module imports
# nodes_post_processing, which imports nodes_latent back: importing post-processing first breaks the cycle
# (the host itself loads each extra under its own module name, so it never meets it).
import comfy_extras.nodes_post_processing  # noqa: E402, F401
harness.load_pack()


# The tiers (markers registered in pyproject.toml), cheapest first.
TIERS = {
    # math: the pack's maths, schemas, docs and static checks; no model is loaded
    "test_sdedit_math": "math", "test_diffusers_parity": "math", "test_docs": "math", "test_hygiene": "math",
    "test_packaging": "math", "test_fill": "math", "test_thumbnails": "math", "test_download": "math",
    # nodes: the nodes in-process on the host runtime, with small random-weight models
    "test_nodes": "nodes", "test_checks": "nodes", "test_colour": "nodes", "test_compat": "nodes",
    "test_custom_sampling": "nodes", "test_determinism": "nodes", "test_editing": "nodes", "test_families": "nodes",
    "test_image_size": "nodes", "test_masking": "nodes", "test_pictures": "nodes", "test_process": "nodes",
    "test_regions": "nodes", "test_schedule": "nodes", "test_sdedit_gaussian": "nodes", "test_strength_map": "nodes",
    "test_tiles": "nodes", "test_video": "nodes", "test_engine": "nodes", "test_flowedit": "nodes",
    "test_geometry_properties": "nodes", "test_masked_content": "nodes",
    # server: a real `main.py --cpu` server (one per module) and its HTTP/websocket API
    "test_server": "server", "test_compat_server": "server", "test_editing_server": "server",
    "test_example_inputs": "server", "test_img2img": "server", "test_pictures_server": "server",
    "test_process_server": "server", "test_reliability": "server", "test_vae_passes": "server",
    # browser: Chromium on the real frontends
    "test_browser": "browser", "test_canvas": "browser",
    # slow: operational runs (set-up and installs, the batch on Ray, the soak)
    "test_setup": "slow", "test_install": "slow", "test_batch": "slow", "test_soak": "slow",
}


def pytest_collection_modifyitems(config, items):
    """Marks each test with its module's tier; a module with no tier stops the run (add it to TIERS)."""
    missing = sorted({item.module.__name__ for item in items if item.module.__name__ not in TIERS})
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: no tier for {', '.join(missing)}: add each to TIERS "
                                f"(one of {sorted(set(TIERS.values()))}; docs/development.md, Tests)")
    for item in items:
        item.add_marker(TIERS[item.module.__name__])


@pytest.fixture(autouse=True)
def inference_mode():
    """Nodes run under inference mode in the host's executor; so do they here."""
    import torch
    with torch.inference_mode():
        yield


@pytest.fixture(scope="session")
def checkpoint_path() -> pathlib.Path:
    """The small random-weight SD1.5 checkpoint, built once and cached between runs."""
    from harness import checkpoint
    return checkpoint.ensure_checkpoint()


@pytest.fixture(scope="session")
def sd15(checkpoint_path):
    """(model, clip, vae) from the host's own CheckpointLoaderSimple."""
    return harness.load_checkpoint(checkpoint_path)[:3]


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_path):
    """A real `main.py --cpu` server with the pack installed, in a workspace of its own (one per test module)."""
    base = harness.prepare_workspace(tmp_path_factory.mktemp("comfyui"), checkpoint_path, [SAMPLE_IMAGE])
    with harness.ComfyServer(COMFYUI, base) as running:
        yield running


@pytest.fixture(scope="module")
def model(sd15):
    return sd15[0]


@pytest.fixture(scope="module")
def vae(sd15):
    return sd15[2]


@pytest.fixture(scope="module")
def conds(sd15):
    """(positive, negative) for the in-process tests; a module with other prompts defines its own."""
    import nodes as host_nodes
    encode = host_nodes.CLIPTextEncode().encode
    return encode(sd15[1], "photo of a green apple")[0], encode(sd15[1], "blurry")[0]


@pytest.fixture(scope="module")
def gaussian_model(sd15):
    """The test checkpoint with the ideal denoiser of Gaussian data as its U-Net (harness/gaussian.py)."""
    from harness import gaussian
    return gaussian.gaussian_model(sd15[0])


@pytest.fixture(scope="module")
def empty_conds(sd15):
    """(positive, negative), both the empty prompt: what the closed-form tests run with (cfg 1)."""
    import nodes as host_nodes
    cond = host_nodes.CLIPTextEncode().encode(sd15[1], "")[0]
    return cond, cond


@pytest.fixture(scope="module")
def wan():
    """(model, vae, conds) of the small random Wan 2.1 (harness/families.py) through UNETLoader and VAELoader."""
    from harness import families
    from helpers import load_family
    return load_family(families.ensure_wan(), 1)
