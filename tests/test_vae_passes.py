"""Large-image VAE passes (nodes/vae_passes.py) on the real runtime and the test checkpoint's SD VAE."""
import asyncio
import json
import time
import uuid

import pytest
import torch

from sdedit_img2img.nodes import vae_passes
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.encode import SDEditEncode


def picture(height, width):
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(5 * x), y, 0.5 + 0.3 * torch.cos(7 * x * y)], -1).unsqueeze(0)


def test_choose_pass_budget_and_limit():
    assert vae_passes.choose_pass(512, 512, budget=512 * 512) == "plain"
    assert vae_passes.choose_pass(512, 513, budget=512 * 512) == "tiled"
    assert vae_passes.choose_pass(8192, 8192, budget=0) == "tiled"
    with pytest.raises(ValueError, match="16384x16384"):
        vae_passes.choose_pass(16384, 16384, budget=0)


def test_budget_shrinks_to_free_memory():
    assert vae_passes.budget_from_memory(bytes_per_pixel=8000, free_bytes=64e9) == vae_passes.DEFAULT_PIXEL_BUDGET
    assert vae_passes.budget_from_memory(bytes_per_pixel=8000, free_bytes=8000 * 1000) == 1000


def test_below_budget_is_the_plain_host_pass_bit_for_bit(sd15):
    vae = sd15[2]
    image = picture(64, 96)
    latent = SDEditEncode.execute(image, vae).result[0]["samples"]
    assert torch.equal(latent, vae.encode(image))
    decoded = SDEditDecode.execute({"samples": latent}, vae).result[0]
    assert torch.equal(decoded, vae.decode(latent))


def test_above_budget_tiles_and_stays_close_to_the_plain_pass(sd15):
    vae = sd15[2]
    image = picture(64, 320)  # wider than the 256-px tiles of one of the host's three tiled passes
    plain = vae.encode(image)
    tiled = vae_passes.encode_pixels(vae, image, budget=0)
    assert tiled.shape == plain.shape
    assert not torch.equal(tiled, plain)  # it did take the tiled path
    # random weights: the encoder's mid-block attention sees the whole image, so tiles differ more
    # than with a trained VAE; still far closer than the latent of another picture
    error = float((tiled - plain).abs().mean())
    assert error < 0.25 * float(plain.abs().mean()), error
    assert error < 0.5 * float((vae.encode(image.flip(2)) - plain).abs().mean()), error

    plain_px = vae.decode(plain)
    tiled_px = vae_passes.decode_latent(vae, plain, budget=0)
    assert tiled_px.shape == plain_px.shape == (1, 64, 320, 3)
    assert not torch.equal(tiled_px, plain_px)
    error = float((tiled_px - plain_px).abs().mean())  # pixels are in [0, 1]
    assert error < 0.5 * float((vae.decode(plain.flip(3)) - plain_px).abs().mean()), error


def test_environment_budget_switches_the_nodes_to_tiles(sd15, monkeypatch):
    vae = sd15[2]
    image = picture(64, 320)
    monkeypatch.setenv(vae_passes.BUDGET_ENV, "0")
    assert torch.equal(SDEditEncode.execute(image, vae).result[0]["samples"],
                       vae_passes.encode_pixels(vae, image, budget=0))


def test_absurd_image_is_refused_before_any_allocation(sd15):
    vae = sd15[2]
    huge = torch.zeros(1, 1, 1, 3).expand(1, 16384, 16384, 3)  # a view: no memory behind it
    with pytest.raises(ValueError) as error:
        SDEditEncode.execute(huge, vae)
    message = str(error.value)
    assert "SDEdit 1 · Encode" in message and "'image'" in message and "16384x16384" in message
    assert "Fix:" in message and "8192x8192" in message

    huge_latent = torch.zeros(1, 4, 1, 1).expand(1, 4, 2048, 2048)
    with pytest.raises(ValueError) as error:
        SDEditDecode.execute({"samples": huge_latent}, vae)
    assert "SDEdit 4 · Decode" in str(error.value) and "'latent'" in str(error.value) and "Fix:" in str(error.value)


def _decode_prompt(checkpoint, size):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "SDEditDecode", "inputs": {"latent": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }


async def _interrupt_after_first_tile(server, prompt):
    """Queues `prompt`, presses Cancel at the decode's first progress event: (seconds to stop, events)."""
    import aiohttp
    client_id = uuid.uuid4().hex
    events = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{server.url.replace('http', 'ws')}/ws?clientId={client_id}") as ws:
            async with session.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client_id}) as r:
                assert r.status == 200, await r.text()
            interrupted_at = None
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                events.append(event["type"])
                if event["type"] == "progress" and event["data"]["node"] == "3" and interrupted_at is None:
                    interrupted_at = time.monotonic()
                    async with session.post(f"{server.url}/interrupt", json={}) as r:
                        assert r.status == 200
                if event["type"] in ("execution_interrupted", "execution_success", "execution_error"):
                    return time.monotonic() - interrupted_at, events


def test_interrupt_stops_a_long_tiled_pass_and_the_next_prompt_runs(tmp_path, checkpoint_path, monkeypatch):
    from harness import ComfyServer, prepare_workspace
    from conftest import COMFYUI
    monkeypatch.setenv(vae_passes.BUDGET_ENV, "0")  # inherited by the server: every decode is tiled
    base = prepare_workspace(tmp_path, checkpoint_path)
    with ComfyServer(COMFYUI, base) as server:
        # 1024x1024 tiled decode: dozens of tiles, minutes on a CPU if it were not stopped
        seconds, events = asyncio.run(_interrupt_after_first_tile(server, _decode_prompt(checkpoint_path.name, 1024)))
        assert events[-1] == "execution_interrupted", events
        assert seconds < 180, f"Cancel took {seconds:.0f} s to stop the tiled decode"
        server.run(_decode_prompt(checkpoint_path.name, 64), timeout=300)
        assert server.alive()
