"""scripts/img2img.py, the README's first command: the example workflow on a real server, headless."""
import re
import subprocess
import sys

from conftest import COMFYUI, REPO
from PIL import Image

SCRIPT = REPO / "scripts" / "img2img.py"
SAMPLE = REPO / "example_workflows" / "input" / "sdedit_example.png"


def img2img(*args, out):
    return subprocess.run([sys.executable, str(SCRIPT), "--comfyui", str(COMFYUI), "--out", str(out), *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_without_a_checkpoint_it_says_so_and_writes_a_picture_of_the_input_size(tmp_path, checkpoint_path):
    result = img2img("--steps", 2, "--strength", 0.5, out=tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "No --ckpt given: using the small random-weight test checkpoint" in result.stderr
    written = re.findall(r"^Wrote (.+\.png)$", result.stdout, re.M)
    assert len(written) == 1 and written[0].startswith(str(tmp_path / "out")), result.stdout
    with Image.open(written[0]) as picture, Image.open(SAMPLE) as sample:
        assert picture.size == sample.size


def test_a_checkpoint_that_is_not_there_is_refused_naming_the_flag(tmp_path):
    result = img2img("--ckpt", "no-such-model.safetensors", out=tmp_path / "out")
    assert result.returncode != 0
    assert "--ckpt 'no-such-model.safetensors': no such file" in result.stderr
    assert "Give the path of" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is written before the checkpoint is found"
