"""End to end: a real `main.py --cpu` server with the pack installed runs the example workflow."""
import copy
import json

import numpy as np
import pytest
from conftest import API_WORKFLOW, UI_WORKFLOW, SAMPLE_IMAGE
from harness import PromptFailed
from PIL import Image

NODE_IDS = ["SDEditEncode", "SDEditAddNoise", "SDEditSampler", "SDEditDecode"]


@pytest.fixture
def workflow(checkpoint_path):
    """The shipped API workflow, pointed at the test checkpoint."""
    prompt = json.loads(API_WORKFLOW.read_text())
    loader = next(n for n in prompt.values() if n["class_type"] == "CheckpointLoaderSimple")
    loader["inputs"]["ckpt_name"] = checkpoint_path.name
    return prompt


def node(prompt, class_type):
    return next(n for n in prompt.values() if n["class_type"] == class_type)


def test_the_pack_loads_without_import_errors(server):
    lines = [line for line in server.log.splitlines() if "sdedit-img2img" in line]
    assert any("custom_nodes" in line and "seconds" in line for line in lines), "the pack was not loaded"
    assert not [line for line in lines if "IMPORT FAILED" in line or "Cannot import" in line], lines


def test_the_nodes_are_registered_with_descriptions_and_tooltips(server):
    info = server.get("/object_info")
    for node_id in NODE_IDS:
        assert node_id in info
        schema = info[node_id]
        assert schema["category"] == "SDEdit" and schema["description"]
        for name, spec in {**schema["input"]["required"], **schema["input"].get("optional", {})}.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert all(schema["output_tooltips"]), f"{node_id} has an output without a tooltip"
    strength = info["SDEditAddNoise"]["input"]["required"]["strength"][1]
    assert (strength["min"], strength["max"], strength["default"], strength["step"]) == (0.0, 1.0, 0.6, 0.01)
    sampler = info["SDEditSampler"]["input"]["required"]
    assert sampler["sampler_name"][1]["options"] == info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert sampler["scheduler"][1]["options"] == info["KSampler"]["input"]["required"]["scheduler"][0]


def test_the_example_workflow_runs_headless_and_saves_a_picture(server, workflow):
    [png] = server.run_images(workflow)
    image = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    width, height = Image.open(SAMPLE_IMAGE).size
    assert image.shape == (height, width, 3)
    assert np.isfinite(image).all() and image.std() > 1.0, "the picture is constant"


def test_strength_out_of_range_is_a_validation_error_and_nothing_runs(server, workflow):
    before = sorted((server.base / "output").rglob("*.png"))
    node(workflow, "SDEditAddNoise")["inputs"]["strength"] = 1.5
    with pytest.raises(PromptFailed) as refused:
        server.run(workflow)
    assert refused.value.status == 400
    text = json.dumps(refused.value.response)
    assert "strength" in text and "bigger than max" in text
    assert sorted((server.base / "output").rglob("*.png")) == before


def test_a_runtime_error_names_the_input_and_the_server_keeps_running(server, workflow):
    """Encode wired straight into Denoise (Add Noise skipped): a clear error, then the next run works."""
    encode_id = next(k for k, n in workflow.items() if n["class_type"] == "SDEditEncode")
    broken = copy.deepcopy(workflow)
    node(broken, "SDEditSampler")["inputs"]["noisy_latent"] = [encode_id, 0]
    with pytest.raises(PromptFailed) as failed:
        server.run(broken)
    assert failed.value.entry["status"]["status_str"] == "error"
    error = failed.value.error
    assert "noisy_latent" in error["exception_message"] and "Add Noise" in error["exception_message"]
    assert server.alive()
    assert server.get("/system_stats")


def test_the_ui_workflow_is_served_as_a_template_and_matches_the_nodes(server):
    templates = server.get("/api/workflow_templates")
    assert "sdedit_img2img" in templates.get("sdedit-img2img", [])
    ui = server.get("/api/workflow_templates/sdedit-img2img/sdedit_img2img.json")
    assert ui == json.loads(UI_WORKFLOW.read_text())
    info = server.get("/object_info")
    for ui_node in ui["nodes"]:
        if ui_node["type"] in ("Note", "MarkdownNote"):
            continue
        assert ui_node["type"] in info, f"unknown node type {ui_node['type']}"
        schema = info[ui_node["type"]]
        sockets = [i["name"] for i in ui_node.get("inputs", []) if i.get("link") is not None]
        declared = list(schema["input"]["required"]) + list(schema["input"].get("optional", {}))
        assert set(sockets) <= set(declared), (ui_node["type"], sockets)
        outputs = [o["name"] for o in ui_node.get("outputs", [])]
        assert outputs == list(schema["output_name"]), (ui_node["type"], outputs)


def test_the_ui_and_api_workflows_describe_the_same_graph():
    ui = json.loads(UI_WORKFLOW.read_text())
    api = json.loads(API_WORKFLOW.read_text())
    ui_nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] not in ("Note", "MarkdownNote")}
    assert {k: n["type"] for k, n in ui_nodes.items()} == {k: n["class_type"] for k, n in api.items()}
    links = {link[0]: link for link in ui["links"]}
    for node_id, ui_node in ui_nodes.items():
        for socket in ui_node.get("inputs", []):
            if socket.get("link") is None:
                continue
            _, src, src_slot, dst, _, _ = links[socket["link"]]
            assert str(dst) == node_id
            assert api[node_id]["inputs"][socket["name"]] == [str(src), src_slot]
    sampler_ui = next(n for n in ui_nodes.values() if n["type"] == "SDEditSampler")
    sampler_api = node(api, "SDEditSampler")["inputs"]
    assert sampler_ui["widgets_values"] == [sampler_api[k] for k in
                                            ("steps", "cfg", "sampler_name", "scheduler", "step_mode", "tiling",
                                             "tile_size", "tile_overlap", "tile_batch")]
