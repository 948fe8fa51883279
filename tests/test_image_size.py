"""nodes/image_size.py: the geometry of each size mode (pure), and any size through the nodes on the
real host runtime with the tiny random-weight SD1.5 checkpoint."""
import pytest
import torch
from sdedit_img2img.nodes import image_size as isz
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.encode import SDEditEncode
from helpers import chain, denoise


# --- pure maths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w,mode,work,offset", [
    (67, 45, "pad", (72, 48), (2, 1)),
    (9, 7, "pad", (16, 8), (3, 0)),
    (8, 8, "pad", (8, 8), (0, 0)),
    (67, 45, "crop", (64, 40), (1, 2)),
    (67, 45, "resize", (64, 48), (0, 0)),
    (9, 7, "resize", (8, 8), (0, 0)),
])
def test_geometry_of_each_size_mode(h, w, mode, work, offset):
    g = isz.working_geometry(h, w, 8, mode)
    assert (g.work_height, g.work_width) == work and (g.top, g.left) == offset
    image = torch.rand(2, h, w, 3)
    working = isz.to_working(image, g)
    if mode == "crop":
        assert working is image  # the host VAE crops, as it always has
        return
    assert working.shape == (2, *work, 3)
    back = isz.from_working(working, g)
    assert back.shape == image.shape
    if mode == "pad":
        assert torch.equal(back, image), "padding is undone exactly"
        assert torch.equal(working[:, :g.top, g.left:g.left + w], image[:, :1].expand(2, g.top, w, 3))


def test_crop_geometry_is_the_host_vaes_own_crop(vae):
    image = torch.rand(1, 67, 45, 3)
    g = isz.working_geometry(67, 45, 8, "crop")
    host = vae.vae_encode_crop_pixels(image)
    assert torch.equal(isz.to_output_frame(image, g), host)


# --- any size -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pad", "resize"])
@pytest.mark.parametrize("shape", [(1, 67, 45), (1, 9, 7), (1, 8, 8), (2, 21, 30)])
def test_any_size_round_trips_to_the_inputs_size(model, conds, vae, mode, shape):
    image = torch.rand(*shape, 3)
    latent = SDEditEncode.execute(image, vae, size_mode=mode)[0]
    g = isz.working_geometry(shape[1], shape[2], 8, mode)
    assert latent["samples"].shape == (shape[0], 4, g.work_height // 8, g.work_width // 8)
    out = denoise(model, conds, latent, steps=2)
    decoded = SDEditDecode.execute(out, vae)[0]
    assert decoded.shape == image.shape and torch.isfinite(decoded).all()


def test_crop_is_the_hosts_own_vae_rounding(model, conds, vae):
    image = torch.rand(1, 67, 45, 3)
    latent = SDEditEncode.execute(image, vae, size_mode="crop")[0]
    assert torch.equal(latent["samples"], vae.encode(image))
    decoded = SDEditDecode.execute(latent, vae)[0]
    assert torch.equal(decoded, vae.decode(latent["samples"]))
    assert decoded.shape == (1, 64, 40, 3)


def test_a_masked_edit_of_an_odd_sized_image_keeps_its_pixels(model, conds, vae):
    image = torch.rand(1, 67, 45, 3)
    mask = torch.zeros(1, 67, 45)
    mask[:, 30:, 20:] = 1.0
    for mode in ("pad", "resize", "crop"):
        _, _, decoded = chain(model, conds, vae, image, mask=mask, size_mode=mode)
        g = isz.working_geometry(67, 45, 8, mode)
        source, keep = isz.to_output_frame(image, g), isz.to_output_frame(mask, g)[0] == 0
        assert decoded.shape == (1, *g.out_size, 3)
        assert torch.equal(decoded[0][keep], source[0][keep]), mode
