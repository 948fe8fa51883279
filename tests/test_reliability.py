"""Bad input through the real server's /prompt, one case per test, on one server for the module.

For every case: either it works and the result is right, or the user gets a message naming the node,
the input and the fix (from /prompt's 400 node_errors, or /history's execution_error); the server stays
up; no output file appears for a failed prompt; and the next valid prompt, re-running all four SDEdit
nodes, gives the reference image made at the start (one test compares it with a fresh server process).
"""
import itertools
import json
import math
import pathlib

import numpy as np
import pytest
from conftest import COMFYUI, SAMPLE_IMAGE
from harness import PromptFailed
from PIL import Image

WIDTH, HEIGHT = 64, 48
MAX_SEED = 0xFFFFFFFFFFFFFFFF
ADD_NOISE, DENOISE = "SDEdit 2 · Add Noise", "SDEdit 3 · Denoise"
_nonce = itertools.count(1)


def base_prompt(ckpt: str, text: str = "a red house by the sea", feather: int = 0) -> dict:
    """The four SDEdit nodes on the sample picture scaled to WIDTH x HEIGHT, 4 steps of euler.

    `feather` is Encode's mask_feather: without a mask it changes nothing in the result, but a new value
    makes the host re-run Encode and every node after it instead of answering from its cache.
    """
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "load": {"class_type": "LoadImage", "inputs": {"image": SAMPLE_IMAGE.name}},
        "img": {"class_type": "ImageScale", "inputs": {"image": ["load", 0], "upscale_method": "nearest-exact",
                                                       "width": WIDTH, "height": HEIGHT, "crop": "disabled"}},
        "enc": {"class_type": "SDEditEncode", "inputs": {"image": ["img", 0], "vae": ["ckpt", 2],
                                                         "mask_feather": feather}},
        "noise": {"class_type": "SDEditAddNoise", "inputs": {"model": ["ckpt", 0], "latent": ["enc", 0],
                                                             "strength": 0.6, "seed": 7}},
        "den": {"class_type": "SDEditSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "noisy_latent": ["noise", 0],
            "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "step_mode": "proportional"}},
        "dec": {"class_type": "SDEditDecode", "inputs": {"latent": ["den", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": "reliability/case"}},
    }


def files(server) -> set[pathlib.Path]:
    """Everything in the workspace's output and temp folders."""
    return {p for sub in ("output", "temp") for p in (server.base / sub).rglob("*") if p.is_file()}


def pixels(path: pathlib.Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def run_ok(server, prompt: dict) -> np.ndarray:
    """Runs a prompt that must succeed; returns its one saved picture (checked readable and new)."""
    before = files(server)
    [png] = server.run_images(prompt)
    assert files(server) - before == {png}, "exactly one new file, the picture"
    return pixels(png)


def refused(server, prompt: dict, node_id: str, input_name: str) -> str:
    """A prompt the server must refuse at validation (HTTP 400, nothing runs): the error text of the input."""
    before = files(server)
    with pytest.raises(PromptFailed) as refusal:
        server.run(prompt)
    assert refusal.value.status == 400, refusal.value.response
    node = refusal.value.response["node_errors"][node_id]
    assert node["class_type"] == prompt[node_id]["class_type"]
    errors = [e for e in node["errors"] if e["extra_info"].get("input_name") == input_name]
    assert errors, f"no error on input {input_name!r}: {node['errors']}"
    assert files(server) == before
    return " ".join(f"{e['message']} {e['details']}" for e in errors)


def failed(server, prompt: dict, node_id: str) -> str:
    """A prompt that must fail while running: the execution_error's message, raised by node `node_id`."""
    before = files(server)
    with pytest.raises(PromptFailed) as failure:
        server.run(prompt)
    assert failure.value.status is None and failure.value.entry["status"]["status_str"] == "error"
    error = failure.value.error
    assert error["node_id"] == node_id, error
    assert files(server) == before, "a failed prompt left a file behind"
    return error["exception_message"]


def names(message: str, node: str, input_name: str, *words: str) -> None:
    """The message names the node, the input and a fix."""
    for part in (node, f"'{input_name}'", "Fix", *words):
        assert part in message, f"{part!r} is missing from: {message}"


@pytest.fixture(scope="module")
def ckpt(checkpoint_path) -> str:
    return checkpoint_path.name


@pytest.fixture(scope="module")
def reference(server, ckpt) -> np.ndarray:
    """The base prompt's picture, made on this server before any bad input."""
    return run_ok(server, base_prompt(ckpt, feather=next(_nonce)))


@pytest.fixture
def recovers(server, ckpt, reference):
    """After the test: the server is up and the next valid prompt re-runs and gives the reference picture."""
    yield
    assert server.alive()
    again = run_ok(server, base_prompt(ckpt, feather=next(_nonce)))
    assert np.array_equal(again, reference), "the next valid prompt gave another picture"


@pytest.fixture(scope="module")
def vae16(server, checkpoint_path) -> str:
    """A VAE with 16 latent channels (random weights, the SD VAE layout otherwise) in the server's models/vae."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    prefix, state, gen = "first_stage_model.", {}, torch.Generator().manual_seed(0)
    with safe_open(str(checkpoint_path), "pt") as f:
        for key in f.keys():
            if key.startswith(prefix):
                state[key[len(prefix):]] = f.get_tensor(key)
    reshaped = {"encoder.conv_out.weight": (32, 512, 3, 3), "encoder.conv_out.bias": (32,),
                "quant_conv.weight": (32, 32, 1, 1), "quant_conv.bias": (32,),
                "post_quant_conv.weight": (16, 16, 1, 1), "post_quant_conv.bias": (16,),
                "decoder.conv_in.weight": (512, 16, 3, 3)}
    for key, shape in reshaped.items():
        state[key] = (torch.randn(shape, generator=gen) * 0.02).to(state[key].dtype)
    folder = server.base / "models" / "vae"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "tiny-16ch-random.safetensors"))
    return "tiny-16ch-random.safetensors"


pytestmark = pytest.mark.usefixtures("recovers")


# --- strength, steps, cfg, seed, combos: refused at validation -------------------------------------------

@pytest.mark.parametrize("value, words", [(-0.1, "smaller than min of 0.0"), (1.5, "bigger than max of 1.0"),
                                          (math.nan, "NaN")], ids=["-0.1", "1.5", "nan"])
def test_strength_out_of_range_or_nan_is_refused(server, ckpt, value, words):
    prompt = base_prompt(ckpt)
    prompt["noise"]["inputs"]["strength"] = value
    names(refused(server, prompt, "noise", "strength"), ADD_NOISE, "strength", words, "from 0")


@pytest.mark.parametrize("value, words", [(0, "smaller than min of 1"), (10001, "bigger than max of 10000")],
                         ids=["0", "10001"])
def test_steps_out_of_range_are_refused_by_the_host(server, ckpt, value, words):
    prompt = base_prompt(ckpt)
    prompt["den"]["inputs"]["steps"] = value
    assert words in refused(server, prompt, "den", "steps")


@pytest.mark.parametrize("value, words", [(-1.0, "smaller than min of 0.0"), (math.nan, "NaN")],
                         ids=["negative", "nan"])
def test_cfg_negative_or_nan_is_refused(server, ckpt, value, words):
    prompt = base_prompt(ckpt)
    prompt["den"]["inputs"]["cfg"] = value
    names(refused(server, prompt, "den", "cfg"), DENOISE, "cfg", words, "guidance scale")


def test_seed_above_the_largest_is_refused_by_the_host(server, ckpt):
    prompt = base_prompt(ckpt)
    prompt["noise"]["inputs"]["seed"] = MAX_SEED + 1
    assert "bigger than max" in refused(server, prompt, "noise", "seed")


@pytest.mark.parametrize("node_id, input_name", [("den", "sampler_name"), ("den", "scheduler"),
                                                  ("den", "step_mode"), ("enc", "size_mode")])
def test_a_hand_edited_name_not_in_the_list_is_refused(server, ckpt, node_id, input_name):
    """The host (0.3.64) checks its own nodes' combos but not a V3 node's: the nodes check theirs."""
    prompt = base_prompt(ckpt)
    prompt[node_id]["inputs"][input_name] = "euler_turbo_deluxe"
    node = "SDEdit 1 · Encode" if node_id == "enc" else DENOISE
    names(refused(server, prompt, node_id, input_name), node, input_name, "'euler_turbo_deluxe'", "not one of")


# --- inputs that work ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(1, 1), (7, 9)], ids=["1x1", "7x9"])
def test_tiny_and_odd_images_work_and_keep_their_size(server, ckpt, size):
    prompt = base_prompt(ckpt)
    prompt["img"]["inputs"].update(width=size[0], height=size[1])
    image = run_ok(server, prompt)
    assert image.shape == (size[1], size[0], 3)


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "ddim", "dpmpp_2m_sde"])
def test_the_largest_seed_works(server, ckpt, reference, sampler):
    """ddim's keep-region noise is drawn from seed + 1 in the host; the largest seed must not overflow it."""
    prompt = base_prompt(ckpt)
    prompt["noise"]["inputs"]["seed"] = MAX_SEED
    prompt["den"]["inputs"]["sampler_name"] = sampler
    image = run_ok(server, prompt)
    assert image.shape == reference.shape and not np.array_equal(image, reference)


@pytest.mark.parametrize("text", ["", ("Ünïcödé 日本語の家 🏠 ∑ " * 1000)[:10000]], ids=["empty", "10000-unicode"])
def test_empty_and_very_long_unicode_prompts_work(server, ckpt, reference, text):
    assert len(text) in (0, 10000)
    prompt = base_prompt(ckpt)
    prompt["pos"]["inputs"]["text"] = text
    image = run_ok(server, prompt)
    assert image.shape == reference.shape and not np.array_equal(image, reference), "the prompt had no effect"


# --- bad images and latents: refused when the node runs ---------------------------------------------------

def test_nan_pixels_are_refused(server, ckpt):
    """NaN passes the host's own min/max check of a FLOAT widget: Solid Mask with value NaN, as an image."""
    prompt = base_prompt(ckpt)
    prompt["solid"] = {"class_type": "SolidMask", "inputs": {"value": math.nan, "width": WIDTH, "height": HEIGHT}}
    prompt["nanimg"] = {"class_type": "MaskToImage", "inputs": {"mask": ["solid", 0]}}
    prompt["enc"]["inputs"]["image"] = ["nanimg", 0]
    names(failed(server, prompt, "enc"), "SDEdit 1 · Encode", "image", "NaN", "node that made the image")


def test_an_infinite_latent_is_refused(server, ckpt):
    """No host image node makes infinite pixels (they clamp to 0-1); forty Latent Multiply x10 make an
    infinite latent."""
    prompt = base_prompt(ckpt)
    previous = ["enc", 0]
    for i in range(40):
        prompt[f"mul{i}"] = {"class_type": "LatentMultiply", "inputs": {"samples": previous, "multiplier": 10.0}}
        previous = [f"mul{i}", 0]
    prompt["noise"]["inputs"]["latent"] = previous
    names(failed(server, prompt, "noise"), ADD_NOISE, "latent", "infinite")


def test_a_16384_square_image_is_refused_before_the_vae_runs(server, ckpt):
    prompt = base_prompt(ckpt)
    prompt["huge"] = {"class_type": "EmptyImage", "inputs": {"width": 16384, "height": 16384, "batch_size": 1,
                                                             "color": 0x808080}}
    prompt["enc"]["inputs"]["image"] = ["huge", 0]
    message = failed(server, prompt, "enc")
    assert "SDEdit 1 · Encode" in message and "'image'" in message and "too large" in message and "8192x8192" in message and "Fix" in message


def test_a_16_channel_latent_into_a_4_channel_model_is_refused(server, ckpt):
    prompt = base_prompt(ckpt)
    prompt["sd3"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": WIDTH, "height": HEIGHT,
                                                                     "batch_size": 1}}
    prompt["noise"]["inputs"]["latent"] = ["sd3", 0]
    names(failed(server, prompt, "noise"), ADD_NOISE, "latent", "16 latent channels", "expects 4")


def test_a_plain_vae_encode_latent_into_denoise_is_refused(server, ckpt):
    prompt = base_prompt(ckpt)
    prompt["venc"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["img", 0], "vae": ["ckpt", 2]}}
    prompt["den"]["inputs"]["noisy_latent"] = ["venc", 0]
    message = failed(server, prompt, "den")
    assert DENOISE in message and "'noisy_latent'" in message and "Add Noise" in message


@pytest.mark.parametrize("noised_by", ["flow", "plain"])
def test_a_latent_noised_for_another_kind_of_model_is_refused(server, ckpt, noised_by):
    """ModelSamplingSD3 makes the SD1.5 model flow-matching: noise is mixed in, not added."""
    prompt = base_prompt(ckpt)
    prompt["flow"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": ["ckpt", 0], "shift": 3.0}}
    prompt["noise" if noised_by == "flow" else "den"]["inputs"]["model"] = ["flow", 0]
    names(failed(server, prompt, "den"), DENOISE, "noisy_latent", "same MODEL")


def test_a_vae_that_does_not_match_the_latent_is_refused_at_decode(server, ckpt, vae16):
    prompt = base_prompt(ckpt)
    prompt["vae16"] = {"class_type": "VAELoader", "inputs": {"vae_name": vae16}}
    prompt["dec"]["inputs"]["vae"] = ["vae16", 0]
    names(failed(server, prompt, "dec"), "SDEdit 4 · Decode", "latent", "4 latent channels", "decodes 16")


def test_a_vae_that_does_not_match_the_model_is_refused_at_add_noise(server, ckpt, vae16):
    prompt = base_prompt(ckpt)
    prompt["vae16"] = {"class_type": "VAELoader", "inputs": {"vae_name": vae16}}
    prompt["enc"]["inputs"]["vae"] = ["vae16", 0]
    names(failed(server, prompt, "noise"), ADD_NOISE, "latent", "16 latent channels", "expects 4")


def test_a_batch_of_3_with_a_batch_index_of_2_is_refused(server, ckpt):
    """Latent Blend broadcasts a 1-latent batch against 2 and keeps the 1-entry batch_index; Latent Batch
    then adds one more latent and entry: 3 latents, batch_index [0, 0]."""
    prompt = base_prompt(ckpt)
    prompt.update({
        "one": {"class_type": "EmptyLatentImage", "inputs": {"width": WIDTH, "height": HEIGHT, "batch_size": 1}},
        "two": {"class_type": "EmptyLatentImage", "inputs": {"width": WIDTH, "height": HEIGHT, "batch_size": 2}},
        "pick": {"class_type": "LatentFromBatch", "inputs": {"samples": ["one", 0], "batch_index": 0, "length": 1}},
        "blend": {"class_type": "LatentBlend", "inputs": {"samples1": ["pick", 0], "samples2": ["two", 0],
                                                          "blend_factor": 0.5}},
        "three": {"class_type": "LatentBatch", "inputs": {"samples1": ["blend", 0], "samples2": ["pick", 0]}},
    })
    prompt["noise"]["inputs"]["latent"] = ["three", 0]
    names(failed(server, prompt, "noise"), ADD_NOISE, "latent", "holds 3 latents", "lists 2",
          "Latent Batch Seed Behavior")


def test_a_mask_of_another_size_is_resized_to_the_image(server, ckpt, reference):
    """An all-edit mask at half the size: resized, it edits everything, so the picture is the unmasked one."""
    prompt = base_prompt(ckpt)
    prompt["half"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": WIDTH // 2, "height": HEIGHT // 2}}
    prompt["enc"]["inputs"]["mask"] = ["half", 0]
    assert np.array_equal(run_ok(server, prompt), reference)


def test_a_mask_batch_that_does_not_fit_the_image_batch_is_refused(server, ckpt):
    prompt = base_prompt(ckpt)
    prompt.update({
        "solid": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": WIDTH, "height": HEIGHT}},
        "as_image": {"class_type": "MaskToImage", "inputs": {"mask": ["solid", 0]}},
        "two": {"class_type": "RepeatImageBatch", "inputs": {"image": ["as_image", 0], "amount": 2}},
        "masks": {"class_type": "ImageToMask", "inputs": {"image": ["two", 0], "channel": "red"}},
    })
    prompt["enc"]["inputs"]["mask"] = ["masks", 0]
    names(failed(server, prompt, "enc"), "SDEdit 1 · Encode", "mask", "2 masks", "image batch has 1")


# --- determinism across processes ---------------------------------------------------------------------------

def test_a_fresh_server_process_gives_the_bit_identical_picture(tmp_path, checkpoint_path, ckpt, reference):
    from harness import ComfyServer, prepare_workspace
    base = prepare_workspace(tmp_path / "fresh", checkpoint_path, [SAMPLE_IMAGE])
    with ComfyServer(COMFYUI, base) as fresh:
        image = run_ok(fresh, base_prompt(ckpt, feather=0))
    assert np.array_equal(image, reference)


def test_the_reference_is_a_real_picture(reference):
    assert reference.shape == (HEIGHT, WIDTH, 3) and reference.std() > 1.0


# --- interruption -------------------------------------------------------------------------------------------

async def _run_and_interrupt(server, prompt: dict, after_steps: int) -> dict:
    """Queues `prompt` with a websocket open, POSTs /interrupt once Denoise has reported `after_steps` steps,
    and returns what the server reported: the steps seen when interrupting, the last step reported, the
    step times before, the seconds from the interrupt to the end and the final event."""
    import time
    import uuid

    import aiohttp
    client_id = uuid.uuid4().hex
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            async with session.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client_id}) as r:
                assert r.status == 200, await r.text()
                prompt_id = (await r.json())["prompt_id"]
            out = {"prompt_id": prompt_id, "seen": None, "last": 0, "step_times": []}
            previous = None
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue  # binary latent previews
                event = json.loads(message.data)
                data = event.get("data", {})
                if data.get("prompt_id") != prompt_id:
                    continue
                if event["type"] == "progress" and data.get("node") == "den":
                    now = time.monotonic()
                    out["last"], out["max"] = data["value"], data["max"]
                    if out["seen"] is None:
                        if previous is not None:
                            out["step_times"].append(now - previous)
                        previous = now
                        if data["value"] >= after_steps:
                            out["seen"], out["interrupted_at"] = data["value"], now
                            async with session.post(f"{server.url}/interrupt", json={}) as r:
                                assert r.status == 200
                elif event["type"] in ("execution_interrupted", "execution_success", "execution_error"):
                    out["event"] = event["type"]
                    out["stop_seconds"] = time.monotonic() - out.get("interrupted_at", time.monotonic())
                    return out
    raise AssertionError("the websocket closed before the prompt ended")


def test_interrupt_stops_denoise_within_one_step_and_the_next_run_is_unchanged(server, ckpt):
    import asyncio
    import statistics

    def slow_prompt(feather):
        prompt = base_prompt(ckpt, feather=feather)
        prompt["img"]["inputs"].update(width=256, height=256)  # a 32x32 latent: steps slow enough to watch
        prompt["noise"]["inputs"]["strength"] = 1.0
        prompt["den"]["inputs"]["steps"] = 12
        return prompt

    before = files(server)
    feather = next(_nonce)
    report = asyncio.run(_run_and_interrupt(server, slow_prompt(feather), after_steps=3))
    assert report["event"] == "execution_interrupted", report
    step = statistics.median(report["step_times"])
    print(f"\ninterrupt: seen at step {report['seen']} of {report['max']}, last step reported {report['last']}, "
          f"median step {step:.3f} s, stopped {report['stop_seconds']:.3f} s after the interrupt")
    assert report["last"] - report["seen"] <= 1, report  # the step in flight ends, no further step starts
    assert report["stop_seconds"] < 2 * step + 1.0, report
    # The host sends execution_interrupted from inside the run and writes /history only after it: wait for that.
    entry = server.wait(report["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "error"  # the host records an interrupted prompt so
    assert files(server) == before, "the interrupted prompt left a file"

    # The same prompt again (Encode and Add Noise answer from the cache, Denoise runs in full) and the same
    # inputs with every SDEdit node re-run: one picture.
    again = run_ok(server, slow_prompt(feather))
    fresh = run_ok(server, slow_prompt(next(_nonce)))
    assert np.array_equal(again, fresh)
