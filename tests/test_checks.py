"""Input checks that no API workflow can reach through the host's own nodes, run in-process on the real
nodes: an image batch of 0 (every host batch node keeps at least one image: Image From Batch, Latent
From Batch, Repeat Image Batch and Empty Image clamp or refuse a length below 1) and infinite pixels
(host image nodes clamp to 0-1; a PNG holds neither NaN nor infinity). Another custom node can make
both, so the nodes refuse them. Plus the checks' own maths."""
import math

import pytest
import torch
from sdedit_img2img.nodes import checks
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.encode import SDEditEncode


def test_an_empty_image_batch_is_refused_by_encode(sd15):
    with pytest.raises(ValueError) as error:
        SDEditEncode.execute(torch.zeros(0, 48, 64, 3), sd15[2])
    message = str(error.value)
    assert "SDEdit 1 · Encode" in message and "'image'" in message and "empty" in message and "Fix" in message


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_pixels_are_refused_by_encode(sd15, bad):
    image = torch.rand(1, 48, 64, 3)
    image[0, 5, 7, 1] = bad
    with pytest.raises(ValueError) as error:
        SDEditEncode.execute(image, sd15[2])
    message = str(error.value)
    assert "'image'" in message and "out of 9216" in message and "Fix" in message
    assert ("1 NaN and 0 infinite" if math.isnan(bad) else "0 NaN and 1 infinite") in message


def test_an_empty_latent_batch_is_refused_by_add_noise(sd15):
    with pytest.raises(ValueError, match="input 'latent' is empty"):
        SDEditAddNoise.execute(sd15[0], {"samples": torch.zeros(0, 4, 6, 8)}, 0.5, 0)


@pytest.mark.parametrize("value, expected", [
    (0.0, None), (1.0, None), (0.5, None), (None, None), (1, None),
    (-0.1, "smaller than min of 0.0"), (1.5, "bigger than max of 1.0"), (math.nan, "is NaN"),
    (math.inf, "bigger than max of 1.0"), (-math.inf, "smaller than min of 0.0"),
])
def test_number_in_range(value, expected):
    message = checks.number_in_range("Node", "x", value, 0.0, 1.0, "do this.")
    if expected is None:
        assert message is None
    else:
        assert expected in message and message.startswith("Node: input 'x'") and message.endswith("Fix: do this.")


def test_first_problem_and_refuse():
    assert checks.first_problem(None, None) is True
    assert checks.first_problem(None, "a", "b") == "a"
    checks.refuse(None)
    with pytest.raises(ValueError, match="^b$"):
        checks.refuse(None, "b")


def test_finite_counts_nan_and_inf_without_false_alarms_on_large_values():
    big = torch.full((2, 3), 3e38)  # its float32 sum would overflow; the float64 sum does not
    assert checks.finite("N", "t", big, "fix") is None
    big[0, 0], big[1, 1] = math.nan, math.inf
    assert "1 NaN and 1 infinite values out of 6" in checks.finite("N", "t", big, "fix")


def test_batch_index_fits():
    samples = torch.zeros(3, 4, 2, 2)
    assert checks.batch_index_fits("N", "l", {"samples": samples}) is None
    assert checks.batch_index_fits("N", "l", {"samples": samples, "batch_index": [4, 5, 6]}) is None
    assert "holds 3 latents but its batch_index lists 2" in checks.batch_index_fits(
        "N", "l", {"samples": samples, "batch_index": [0, 0]})


def test_noise_kind_tells_flow_from_eps_and_v_prediction(sd15):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete, ModelSamplingSD3
    model = sd15[0]
    kind = lambda m: checks.noise_kind(m.get_model_object("model_sampling"))  # noqa: E731
    assert kind(model) == "EPS"
    assert kind(ModelSamplingDiscrete().patch(model, "v_prediction", False)[0]) == "EPS"  # same noise, same sigmas
    assert kind(ModelSamplingSD3().patch(model, 3.0)[0]) == "CONST"
