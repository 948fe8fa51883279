"""End to end on a real `main.py --cpu` server: the strength-sweep example and the trajectory output."""
import copy
import json

import numpy as np
import pytest
from conftest import API_WORKFLOW, REPO, SAMPLE_IMAGE
from harness import PromptFailed
from PIL import Image

SWEEP_UI = REPO / "example_workflows" / "sdedit_strength_sweep.json"
SWEEP_API = REPO / "example_workflows" / "api" / "sdedit_strength_sweep.json"
GAP = 4  # nodes/sweep.py


def with_checkpoint(path, checkpoint_path):
    prompt = json.loads(path.read_text())
    node(prompt, "CheckpointLoaderSimple")["inputs"]["ckpt_name"] = checkpoint_path.name
    return prompt


def node(prompt, class_type):
    return next(n for n in prompt.values() if n["class_type"] == class_type)


def test_the_new_output_and_node_are_registered_with_tooltips(server):
    info = server.get("/object_info")
    sampler = info["SDEditSampler"]
    assert sampler["output_name"] == ["latent", "trajectory"] and sampler["output"] == ["LATENT", "LATENT"]
    assert all(sampler["output_tooltips"])
    sweep = info["SDEditStrengthSweep"]
    assert sweep["category"] == "SDEdit" and sweep["description"]
    assert sweep["output"] == ["IMAGE", "STRING"] and all(sweep["output_tooltips"])
    for name, spec in sweep["input"]["required"].items():
        assert spec[1].get("tooltip"), name
    for name in ("sampler_name", "scheduler"):
        assert sweep["input"]["required"][name] == sampler["input"]["required"][name]


def test_the_sweep_example_runs_and_saves_a_labelled_grid_and_the_table(server, checkpoint_path):
    prompt = with_checkpoint(SWEEP_API, checkpoint_path)
    node(prompt, "SDEditStrengthSweep")["inputs"]["steps"] = 5  # the VAE at 512x384 dominates on a CPU anyway
    entry = server.run(prompt)
    [png] = server.saved_images(entry)
    assert "strength_sweep" in png.name
    grid = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    width, height = Image.open(SAMPLE_IMAGE).size
    assert grid.shape[1] == 4 * width + 5 * GAP and height < grid.shape[0] < height + 80
    band = grid[GAP:grid.shape[0] - height - GAP, GAP:GAP + width]
    assert band.max() == 255 and band.min() < 80, "a dark label on a white band"
    preview_id = next(k for k, n in prompt.items() if n["class_type"] == "PreviewAny")
    [table] = entry["outputs"][preview_id]["text"]
    lines = table.splitlines()
    assert lines[0].startswith("| strength | steps | PSNR (dB) | MAD (0-255) |") and len(lines) == 2 + 4
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["0.2", "0.4", "0.6", "0.8"]
    assert [int(line.split("|")[2]) for line in lines[2:]] == [1, 2, 3, 4]  # round(strength x 5)


def test_a_bad_strength_list_is_a_clear_error_and_the_server_keeps_running(server, checkpoint_path):
    prompt = with_checkpoint(SWEEP_API, checkpoint_path)
    node(prompt, "SDEditStrengthSweep")["inputs"]["strengths"] = "0.2; 1.4"
    with pytest.raises(PromptFailed) as failed:
        server.run(prompt)
    assert failed.value.status is None and failed.value.entry["status"]["status_str"] == "error"
    message = failed.value.error["exception_message"]
    assert "Strength Sweep" in message and "'strengths'" in message and "1.4" in message, message
    assert server.alive() and server.get("/system_stats")


def test_the_trajectory_decodes_to_one_picture_per_step(server, checkpoint_path):
    prompt = with_checkpoint(API_WORKFLOW, checkpoint_path)
    sampler_id = next(k for k, n in prompt.items() if n["class_type"] == "SDEditSampler")
    vae = node(prompt, "SDEditDecode")["inputs"]["vae"]
    node(prompt, "SDEditSampler")["inputs"]["steps"] = 5  # strength 0.6: 3 steps
    prompt["90"] = {"class_type": "SDEditDecode", "inputs": {"latent": [sampler_id, 1], "vae": vae}}
    prompt["91"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "sdedit/trajectory"}}
    images = server.run_images(copy.deepcopy(prompt))
    steps = [p for p in images if "trajectory" in p.name]
    [result] = [p for p in images if "trajectory" not in p.name]
    assert len(steps) == 3
    last = np.asarray(Image.open(sorted(steps)[-1]), dtype=np.int16)
    # euler's last prediction is the result up to float rounding: at most one 8-bit level apart.
    assert np.abs(last - np.asarray(Image.open(result), dtype=np.int16)).max() <= 1


def test_the_sweep_ui_workflow_is_a_template_and_its_api_twin_is_the_same_graph(server):
    assert "sdedit_strength_sweep" in server.get("/api/workflow_templates")["sdedit-img2img"]
    ui = server.get("/api/workflow_templates/sdedit-img2img/sdedit_strength_sweep.json")
    assert ui == json.loads(SWEEP_UI.read_text())
    api = json.loads(SWEEP_API.read_text())
    info = server.get("/object_info")
    graph = {str(n["id"]): n for n in ui["nodes"] if n["type"] not in ("Note", "MarkdownNote")}
    assert {k: n["type"] for k, n in graph.items()} == {k: n["class_type"] for k, n in api.items()}
    links = {link[0]: link for link in ui["links"]}
    for node_id, ui_node in graph.items():
        schema = info[ui_node["type"]]
        assert [o["name"] for o in ui_node["outputs"]] == list(schema["output_name"]), ui_node["type"]
        declared = list(schema["input"]["required"]) + list(schema["input"].get("optional", {}))
        for socket in ui_node["inputs"]:
            if socket["link"] is not None:  # (widget-only sockets such as LoadImage's upload are the UI's own)
                assert socket["name"] in declared, (ui_node["type"], socket["name"])
                _, src, slot, dst, _, _ = links[socket["link"]]
                assert str(dst) == node_id and api[node_id]["inputs"][socket["name"]] == [str(src), slot]
    sweep_ui = graph["5"]
    sweep_api = api["5"]["inputs"]
    widgets = [sweep_api[k] for k in ("strengths", "seed")] + ["fixed"] + [
        sweep_api[k] for k in ("steps", "cfg", "sampler_name", "scheduler", "step_mode")]
    assert sweep_ui["widgets_values"] == widgets
    # The defaults shipped are the node's own defaults.
    spec = info["SDEditStrengthSweep"]["input"]["required"]
    assert sweep_api["strengths"] == spec["strengths"][1]["default"]
    assert sweep_api["step_mode"] == spec["step_mode"][1]["default"]


def graph_of(workflow: dict) -> dict:
    """The workflow without its layout: tools/fit_templates.py moves and sizes the UI file's nodes, groups and
    notes to what the frontends measure after the asset script wrote it (the canvas layout test checks that)."""
    out = json.loads(json.dumps(workflow))
    for node in out.get("nodes", []):
        node.pop("pos", None), node.pop("size", None)
    for group in out.get("groups", []):
        group.pop("bounding", None)
    return out


@pytest.mark.parametrize("path", [SWEEP_UI, SWEEP_API])
def test_the_example_files_are_what_the_asset_script_writes(path):
    from tools import make_example_assets
    ui, api = make_example_assets.sweep_workflows()
    expected = ui if path == SWEEP_UI else api
    assert graph_of(json.loads(path.read_text())) == graph_of(expected)
