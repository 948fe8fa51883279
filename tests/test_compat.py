"""Host calls that survive the host's changes: the dated node API, latents of kinds the pack does not
support, and noising that follows the host's own `noise_scaling` (whatever a release puts in it).

Runs on every release of the matrix (tools/compat.sh); the host's version decides which host
features must be present, so a release that has them cannot pass by leaving them out.
"""
import importlib.util
import sys

import comfy.samplers
import comfy_api.v0_0_2
import comfy_api.latest
import nodes as host_nodes
import pytest
import torch
from comfy_extras.nodes_custom_sampler import CFGGuider, RandomNoise, SamplerCustomAdvanced
from comfy_extras.nodes_model_advanced import (ModelSamplingContinuousEDM, ModelSamplingDiscrete,
                                               ModelSamplingFlux, ModelSamplingSD3)
from conftest import REPO
from helpers import HOST_VERSION
from sdedit_img2img.nodes import common, pictures
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.denoise import SDEditDenoise



@pytest.fixture(scope="module")
def conds(sd15):
    encode = host_nodes.CLIPTextEncode().encode
    return encode(sd15[1], "a red house")[0], encode(sd15[1], "")[0]


def clean_latent():
    return {"samples": torch.randn(1, 4, 8, 12, generator=torch.Generator().manual_seed(3))}


# --- the node API -------------------------------------------------------------------------------

def test_the_nodes_use_the_hosts_dated_api():
    assert common.io is comfy_api.v0_0_2.io
    assert common.ComfyExtension is comfy_api.v0_0_2.ComfyExtension


def test_a_host_without_the_dated_api_falls_back_to_latest(monkeypatch):
    monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", None)  # makes `import comfy_api.v0_0_2` fail
    spec = importlib.util.spec_from_file_location("common_without_v0_0_2", REPO / "nodes" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.io is comfy_api.latest.io and module.ComfyExtension is comfy_api.latest.ComfyExtension


# --- latents the pack does not support ------------------------------------------------------------

def nested_latents():
    """Nested latents as this host makes them: torch's own, and since 0.3.67 the host's NestedTensor
    (LTX-2 audio-video latents are one of those)."""
    parts = [torch.zeros(1, 4, 8, 12), torch.zeros(1, 4, 4, 6)]
    kinds = {"torch.nested": torch.nested.nested_tensor(parts)}
    if HOST_VERSION >= (0, 3, 67):
        from comfy.nested_tensor import NestedTensor
        kinds["comfy.nested_tensor"] = NestedTensor(parts)
    return kinds


def run_node(node, model, conds, samples):
    latent = {"samples": samples}
    if node == "add_noise":
        return SDEditAddNoise.execute(model, latent, 0.5, 0)
    noisy = {**latent, pictures.KEY: (pictures.Picture(row="", clean=latent["samples"], sigma=1.0, strength=0.5, seed=0),)}
    return SDEditDenoise.execute(model, *conds, noisy, 4, 7.0, "euler", "normal", "proportional")


@pytest.mark.parametrize("node,input_name", [("add_noise", "latent"), ("sampler", "noisy_latent")])
def test_a_nested_latent_is_refused_naming_the_input(model, conds, node, input_name):
    kinds = nested_latents()
    assert len(kinds) == (2 if HOST_VERSION >= (0, 3, 67) else 1)
    for kind, samples in kinds.items():
        with pytest.raises(ValueError) as error:
            run_node(node, model, conds, samples)
        message = str(error.value)
        assert f"input '{input_name}'" in message and "nested latent" in message, (kind, message)
        assert "SDEdit" in message and "single image or video latent" in message


@pytest.mark.parametrize("node,input_name", [("add_noise", "latent"), ("sampler", "noisy_latent")])
def test_a_latent_of_the_wrong_dimensions_is_refused_naming_the_input(model, conds, node, input_name):
    video = torch.zeros(1, 4, 3, 8, 12)  # 4 channels as the model wants, but a video latent for an image model
    with pytest.raises(ValueError) as error:
        run_node(node, model, conds, video)
    message = str(error.value)
    assert f"input '{input_name}'" in message and "3-D (video) latent" in message and "2-D (image)" in message


def test_something_that_is_not_a_tensor_is_refused_naming_the_input(model, conds):
    with pytest.raises(ValueError) as error:
        run_node("add_noise", model, conds, [[0.0]])
    assert "input 'latent' holds a list, not a latent tensor" in str(error.value)


# --- noising is the host's own ----------------------------------------------------------------------

def patched(model, kind):
    """The test model under each of the host's model_sampling kinds, patched by the host's own nodes."""
    if kind == "eps":
        return model
    if kind == "v_prediction":
        return ModelSamplingDiscrete().patch(model, "v_prediction", False)[0]
    if kind == "lcm":
        return ModelSamplingDiscrete().patch(model, "lcm", False)[0]
    if kind == "edm":
        return ModelSamplingContinuousEDM().patch(model, "edm", 120.0, 0.002)[0]
    if kind == "flow_sd3":
        return ModelSamplingSD3().patch(model, 3.0)[0]
    if kind == "flow_flux":
        return ModelSamplingFlux().patch(model, 1.15, 0.5, 96, 64)[0]
    raise AssertionError(kind)


class CapturedStart(Exception):
    """Raised by the capturing sampler: the host has built the start latent, nothing else needs to run."""

    def __init__(self, x):
        self.x = x


def _capture(model, x, sigmas, extra_args=None, callback=None, disable=None):
    raise CapturedStart(x.clone())


def host_start(model, conds, latent, sigma, seed):
    """The latent the host's own SamplerCustomAdvanced hands its sampler when it starts at `sigma`:
    the host's noise, its `noise_scaling` (with `max_denoise` at the top of the schedule) and its
    latent_format, all as the running release does them."""
    sigmas = torch.tensor([sigma, 0.0])
    noise = RandomNoise().get_noise(seed)[0]
    guider = CFGGuider().get_guider(model, conds[0], conds[1], 1.0)[0]
    sampler = comfy.samplers.KSAMPLER(_capture)
    with pytest.raises(CapturedStart) as captured:
        SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)
    return captured.value.x


@pytest.mark.parametrize("kind", ["eps", "v_prediction", "lcm", "edm", "flow_sd3", "flow_flux"])
@pytest.mark.parametrize("strength", [0.3, 0.75])
def test_add_noise_equals_the_hosts_own_noising(model, conds, kind, strength):
    m = patched(model, kind)
    latent, seed = clean_latent(), 11
    noisy = SDEditAddNoise.execute(m, latent, strength, seed)[0]
    sigma = pictures.carried(noisy)[0].sigma
    ours = m.get_model_object("latent_format").process_in(noisy["samples"])
    torch.testing.assert_close(ours, host_start(m, conds, latent, sigma, seed), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["eps", "edm", "flow_sd3"])
def test_full_strength_equals_the_hosts_text_to_image_start(model, conds, kind):
    """At strength 1 the input picture is dropped: the start is the host's start from an empty latent."""
    m = patched(model, kind)
    latent, seed = clean_latent(), 5
    noisy = SDEditAddNoise.execute(m, latent, 1.0, seed)[0]
    sigma = pictures.carried(noisy)[0].sigma
    assert sigma == pytest.approx(float(m.get_model_object("model_sampling").sigma_max))
    ours = m.get_model_object("latent_format").process_in(noisy["samples"])
    empty = {"samples": torch.zeros_like(latent["samples"])}
    torch.testing.assert_close(ours, host_start(m, conds, empty, sigma, seed), rtol=1e-5, atol=1e-5)
