"""What the frontend fetches from a real server for this pack: the help pages and the template with its
thumbnail. Part of the server suite that tools/compat.sh runs on the oldest and newest host."""
import json

import pytest
from conftest import REPO
from helpers import pack_folder

NODE_IDS = ["SDEditEncode", "SDEditAddNoise", "SDEditSampler", "SDEditDecode"]
TEMPLATES = REPO / "example_workflows"


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_help_pages_are_served_where_the_frontend_looks(server, object_info, node_id):
    folder = pack_folder(object_info[node_id]["python_module"])
    page = server.get(f"/extensions/{folder}/docs/{node_id}.md")
    assert page == (REPO / "js" / "docs" / f"{node_id}.md").read_bytes()


def test_the_template_and_its_thumbnail_are_served(server, object_info):
    folder = pack_folder(object_info["SDEditEncode"]["python_module"])
    listed = server.get("/api/workflow_templates")[folder]
    assert sorted(listed) == sorted(p.stem for p in TEMPLATES.glob("*.json"))
    for name in listed:
        workflow = server.get(f"/api/workflow_templates/{folder}/{name}.json")
        assert workflow == json.loads((TEMPLATES / f"{name}.json").read_text())
        thumbnail = server.get(f"/api/workflow_templates/{folder}/{name}.jpg")
        assert thumbnail[:3] == b"\xff\xd8\xff", "not a JPEG"
        assert thumbnail == (TEMPLATES / f"{name}.jpg").read_bytes()
