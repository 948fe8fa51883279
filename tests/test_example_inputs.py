"""The templates' pictures (and video) are offered to the host's input folder when a real server loads the pack:
a fresh workspace gets them, a user's file of the same name is left byte for byte, and an unwritable folder is
logged and the server carries on."""
import json
import pathlib

from conftest import COMFYUI, REPO
from harness import ComfyServer, prepare_workspace

PICTURES = sorted(p for p in (REPO / "example_workflows" / "input").iterdir() if p.suffix in (".png", ".mp4"))
# Every picture or video a shipped template loads (LoadImage, LoadImageMask, LoadVideo) is one the pack ships.
LOADERS = ("LoadImage", "LoadImageMask", "LoadVideo")
NEEDED = {n["widgets_values"][0] for t in (REPO / "example_workflows").glob("*.json")
          for n in json.loads(t.read_text())["nodes"] if n["type"] in LOADERS}


def test_every_picture_a_template_loads_is_shipped():
    from sdedit_img2img.nodes import example_inputs
    assert NEEDED and NEEDED <= {p.name for p in PICTURES}, NEEDED
    assert any(name.endswith(".mp4") for name in NEEDED), "the video template's input"
    assert [p.name for p in example_inputs.example_pictures()] == [p.name for p in PICTURES], "what the pack offers"


def test_a_fresh_input_folder_gets_the_pictures_and_a_users_file_is_kept(tmp_path, checkpoint_path):
    base = prepare_workspace(tmp_path / "comfyui", checkpoint_path)
    assert not any((base / "input").iterdir())
    # A user's own picture under one of the names, and nothing else: it must come out untouched.
    users = base / "input" / PICTURES[0].name
    users.write_bytes(b"the user's own picture, not the pack's")
    before = users.read_bytes(), users.stat().st_mtime_ns
    with ComfyServer(COMFYUI, base) as server:
        offered = server.get("/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"][0]
        video = server.get("/object_info/LoadVideo")["LoadVideo"]["input"]["required"]["file"]
        offered += video[1]["options"] if video[0] == "COMBO" else video[0]  # a V3 combo, or (0.3.50) a list
        log = server.log
    assert (users.read_bytes(), users.stat().st_mtime_ns) == before
    for picture in PICTURES[1:]:
        assert (base / "input" / picture.name).read_bytes() == picture.read_bytes(), picture.name
    assert {p.name for p in PICTURES} <= set(offered) | {PICTURES[0].name}
    lines = [line for line in log.splitlines() if "[SDEdit]" in line]
    assert len(lines) == 1, lines
    assert f"left the existing {PICTURES[0].name} as they are" in lines[0]
    assert "copied " + ", ".join(p.name for p in PICTURES[1:]) in lines[0]

    # A second start offers nothing new and changes nothing.
    stamps = {p.name: (base / "input" / p.name).stat().st_mtime_ns for p in PICTURES}
    with ComfyServer(COMFYUI, base) as server:
        log = server.log
    assert {p.name: (base / "input" / p.name).stat().st_mtime_ns for p in PICTURES} == stamps
    [line] = [line for line in log.splitlines() if "[SDEdit]" in line]
    assert line.endswith(f"[SDEdit] the templates' example pictures in {base / 'input'}: left the existing "
                         + ", ".join(p.name for p in PICTURES) + " as they are"), line


def test_an_input_folder_that_cannot_be_written_is_logged_and_the_server_starts(tmp_path, checkpoint_path):
    base = prepare_workspace(tmp_path / "comfyui", checkpoint_path)
    missing = tmp_path / "no-such-folder"  # --input-directory to a folder that is not there: every write fails
    with ComfyServer(COMFYUI, base, extra_args=["--input-directory", str(missing)]) as server:
        assert "SDEditSampler" in server.get("/object_info/SDEditSampler")
        log = server.log
    lines = [line for line in log.splitlines() if "[SDEdit]" in line]
    assert len(lines) == 1 and "could not write" in lines[0] and "upload them by hand" in lines[0], lines
    assert not missing.exists()


def test_offer_in_process_never_overwrites(tmp_path):
    from sdedit_img2img.nodes import example_inputs
    (tmp_path / PICTURES[1].name).symlink_to(tmp_path / "dangling")  # even a dangling link is someone's name
    result = example_inputs.offer(tmp_path)
    assert result["kept"] == [PICTURES[1].name] and not result["failed"]
    assert sorted(result["copied"]) == sorted(p.name for p in PICTURES if p != PICTURES[1])
    assert (tmp_path / PICTURES[1].name).is_symlink() and not (tmp_path / "dangling").exists()
    assert example_inputs.offer(tmp_path)["copied"] == []
    assert pathlib.Path(tmp_path / PICTURES[0].name).read_bytes() == PICTURES[0].read_bytes()
