"""Determinism in-process on the host runtime: a result does not depend on the batch it ran in, and at
strength 1 it does not depend on the input picture, for every sampler family. (Bit-identical pictures
across two server processes: tests/test_reliability.py.)"""
import nodes as host_nodes
import pytest
import torch
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes.encode import SDEditEncode

H, W = 48, 64


def picture(kind: int) -> torch.Tensor:
    """A deterministic IMAGE (1, H, W, 3) in [0, 1]; different kinds are different pictures."""
    y = torch.linspace(0, 1, H).view(H, 1)
    x = torch.linspace(0, 1, W).view(1, W)
    channels = [(x + kind * y) % 1, (y * (kind + 1) + 0 * x) % 1, ((x * y * 4) + kind / 3) % 1]
    return torch.stack(channels, dim=-1).unsqueeze(0)


@pytest.fixture(scope="module")
def conds(sd15):
    encode = host_nodes.CLIPTextEncode().encode
    return encode(sd15[1], "a lighthouse at dusk")[0], encode(sd15[1], "blurry")[0]


def sdedit(sd15, conds, latent, strength, sampler_name, seed=11, steps=6):
    model = sd15[0]
    noisy = SDEditAddNoise.execute(model, latent, strength, seed)[0]
    return SDEditDenoise.execute(model, conds[0], conds[1], noisy, steps, 6.0, sampler_name, "normal",
                                 "proportional")[0]["samples"]


@pytest.fixture(scope="module")
def batch_of_4(sd15):
    return SDEditEncode.execute(torch.cat([picture(k) for k in range(4)]), sd15[2])[0]


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "uni_pc"])
def test_each_image_of_a_batch_of_4_matches_it_run_alone_after_latent_from_batch(sd15, conds, batch_of_4,
                                                                                 sampler_name):
    """Pictures (0-1) to 1e-4; the latents differ by float rounding only (the U-Net runs a batch of 8
    instead of 2: cond and uncond per image), under 1e-5 of their scale."""
    together = sdedit(sd15, conds, batch_of_4, 0.7, sampler_name)
    pictures = SDEditDecode.execute({"samples": together}, sd15[2])[0]
    assert together.shape[0] == 4
    for i in range(4):
        alone_latent = host_nodes.LatentFromBatch().frombatch(batch_of_4, i, 1)[0]  # batch_index [i]: its own noise
        alone = sdedit(sd15, conds, alone_latent, 0.7, sampler_name)
        assert alone.shape[0] == 1
        diff = float((SDEditDecode.execute({"samples": alone}, sd15[2])[0][0] - pictures[i]).abs().max())
        assert diff <= 1e-4, f"image {i}: differs by {diff} from its place in the batch"
        relative = float((alone[0] - together[i]).abs().max() / together[i].abs().max())
        assert relative <= 1e-5, f"latent {i}: differs by {relative} of its scale"
    # and the four are not the same picture (the noise is drawn per batch_index, not once)
    assert float((pictures[0] - pictures[1]).abs().max()) > 1e-2


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral", "dpmpp_2m_sde", "dpmpp_2m", "uni_pc"])
def test_strength_1_does_not_depend_on_the_input_picture(sd15, conds, sampler_name):
    """First-order, ancestral, SDE and multistep samplers alike: two pictures, one seed, one result."""
    vae = sd15[2]
    a = sdedit(sd15, conds, SDEditEncode.execute(picture(1), vae)[0], 1.0, sampler_name)
    b = sdedit(sd15, conds, SDEditEncode.execute(picture(2), vae)[0], 1.0, sampler_name)
    assert torch.equal(a, b), f"max difference {float((a - b).abs().max())}"
    # while below 1 the picture shows through
    c = sdedit(sd15, conds, SDEditEncode.execute(picture(1), vae)[0], 0.5, sampler_name)
    d = sdedit(sd15, conds, SDEditEncode.execute(picture(2), vae)[0], 0.5, sampler_name)
    assert float((c - d).abs().max()) > 1e-2
