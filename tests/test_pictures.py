"""Each picture's record follows it through the host's batch nodes (nodes/pictures.py), on the real runtime:
its keep region re-noised from its own clean latent with its own noise at every step, its kept pixels its
own input's, its own noise level; and a clear refusal, by name, where a row cannot be attributed."""
import comfy.sample
import helpers
import pytest
import torch
from comfy_extras.nodes_latent import LatentBatch, LatentMultiply
from comfy_extras.nodes_rebatch import LatentRebatch
from sdedit_img2img.nodes import pictures
from sdedit_img2img.nodes import sdedit_math as sm
from sdedit_img2img.nodes.add_noise import SDEditAddNoise
from sdedit_img2img.nodes.decode import SDEditDecode
from sdedit_img2img.nodes.denoise import SDEditDenoise
from sdedit_img2img.nodes import masking
from sdedit_img2img.nodes.encode import SDEditEncode

import nodes as host_nodes

H, W = 64, 64  # an 8 x 8 latent
STEPS, SEED = 5, 7
KEEP = 4  # latent columns kept (32 pixels)


def image(kind: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    return torch.stack([(x * (kind + 1)) % 1, (y + 0.2 * kind) % 1, 0.5 * (x + y) * (kind % 2)], -1)[None]


def keep_left_mask() -> torch.Tensor:
    mask = torch.ones(1, H, W)
    mask[:, :, :KEEP * 8] = 0.0
    return mask


def watched(model, inputs: list):
    """The model, with every U-Net input (x before c_in scaling) appended to `inputs`."""
    m = model.clone()

    def wrapper(apply_model, args):
        inputs.append(args["input"][: args["input"].shape[0] // 2].clone())  # the cond half of the CFG batch
        return apply_model(args["input"], args["timestep"], **args["c"])
    m.set_model_unet_function_wrapper(wrapper)
    return m


def denoise(model, conds, noisy, sampler_name="euler"):
    return SDEditDenoise.execute(model, *conds, noisy, STEPS, 5.0, sampler_name, "normal", "proportional")


def assert_keep_renoised(model, inputs, clean, noise, strength):
    """At every step, the kept columns of each row are that row's clean latent noised with its own noise."""
    ms, fmt = model.get_model_object("model_sampling"), model.get_model_object("latent_format")
    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, strength, sm.start_sigma(ms, strength))
    assert len(inputs) == len(sigmas) - 1
    for step, (x, sigma) in enumerate(zip(inputs, sigmas[:-1])):
        expected = fmt.process_in(clean) + sigma * noise
        torch.testing.assert_close(x[..., :KEEP], expected[..., :KEEP], rtol=1e-4, atol=1e-4,
                                   msg=f"step {step}: each row's keep region is its own clean latent re-noised")


def test_repeat_after_add_noise_renoises_each_copys_keep_region(model, conds, vae):
    latent = SDEditEncode.execute(image(1), vae, mask=keep_left_mask())[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    repeated = host_nodes.RepeatLatentBatch().repeat(noisy, 2)[0]
    inputs = []
    out = denoise(watched(model, inputs), conds, repeated)[0]
    noise = comfy.sample.prepare_noise(latent["samples"], SEED)
    assert_keep_renoised(model, inputs, latent["samples"].repeat(2, 1, 1, 1), noise.repeat(2, 1, 1, 1), 0.6)
    alone = denoise(model, conds, noisy)[0]
    for row in range(2):
        torch.testing.assert_close(out["samples"][row:row + 1], alone["samples"], rtol=1e-4, atol=1e-4)
    decoded = SDEditDecode.execute(out, vae)[0]
    assert decoded.shape[0] == 2
    for row in range(2):
        assert torch.equal(decoded[row, :, :KEEP * 8], image(1)[0, :, :KEEP * 8]), "kept pixels are the input's"


def test_latent_from_batch_gives_the_picked_picture_its_own_keep_region_and_noise(model, conds, vae):
    images = torch.cat([image(1), image(2)])
    latent = SDEditEncode.execute(images, vae, mask=keep_left_mask())[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.6, SEED)[0]
    picked = host_nodes.LatentFromBatch().frombatch(noisy, 1, 1)[0]
    inputs = []
    out = denoise(watched(model, inputs), conds, picked)[0]
    noise = comfy.sample.prepare_noise(latent["samples"], SEED)[1:2]
    assert_keep_renoised(model, inputs, latent["samples"][1:2], noise, 0.6)
    decoded = SDEditDecode.execute(out, vae)[0]
    assert torch.equal(decoded[0, :, :KEEP * 8], image(2)[0, :, :KEEP * 8]), "picture 2's own pixels"


def test_repeat_before_add_noise_still_composites_every_picture(model, conds, vae):
    latent = SDEditEncode.execute(image(3), vae, mask=keep_left_mask())[0]
    repeated = host_nodes.RepeatLatentBatch().repeat(latent, 2)[0]
    noisy = SDEditAddNoise.execute(model, repeated, 0.6, SEED)[0]
    out = denoise(model, conds, noisy)[0]
    assert not torch.allclose(out["samples"][0], out["samples"][1]), "each copy got noise of its own"
    decoded = SDEditDecode.execute(out, vae)[0]
    for row in range(2):
        assert torch.equal(decoded[row, :, :KEEP * 8], image(3)[0, :, :KEEP * 8])


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral"])
def test_mixed_strengths_in_one_batch_equal_each_picture_run_alone(model, conds, vae, sampler_name):
    a = SDEditAddNoise.execute(model, SDEditEncode.execute(image(1), vae)[0], 0.3, 1)[0]
    b = SDEditAddNoise.execute(model, SDEditEncode.execute(image(2), vae)[0], 0.8, 2)[0]
    both = helpers.host_node(LatentBatch, a, b)[0]
    out, trajectory = denoise(model, conds, both, sampler_name)
    alone = [denoise(model, conds, n, sampler_name) for n in (a, b)]
    for row, (result, steps) in enumerate(alone):
        assert torch.equal(out["samples"][row:row + 1], result["samples"]), f"picture {row + 1} as if alone"
    # Step-major over the longer run; the shorter one repeats its last prediction.
    counts = [t["samples"].shape[0] for _, t in alone]
    assert counts == [sm.proportional_step_count(0.3, STEPS), sm.proportional_step_count(0.8, STEPS)]
    assert trajectory["samples"].shape[0] == 2 * max(counts)
    for s in range(max(counts)):
        for row, (_, steps) in enumerate(alone):
            expected = steps["samples"][min(s, counts[row] - 1)]
            assert torch.equal(trajectory["samples"][2 * s + row], expected)


def test_rebatch_latents_keeps_every_picture_attributed(model, conds, vae):
    images = torch.cat([image(1), image(2)])
    latent = SDEditEncode.execute(images, vae, mask=keep_left_mask())[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.5, SEED)[0]
    parts = helpers.host_node(LatentRebatch, [noisy], [1])[0]
    assert len(parts) == 2 and pictures.KEY not in parts[1], "the host drops what the dict carried"
    for row, part in enumerate(parts):
        decoded = SDEditDecode.execute(denoise(model, conds, part)[0], vae)[0]
        assert torch.equal(decoded[0, :, :KEEP * 8], images[row, :, :KEEP * 8])


def test_a_node_that_changes_values_with_a_mask_is_refused_by_name(model, conds, vae):
    latent = SDEditEncode.execute(image(1), vae, mask=keep_left_mask())[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.5, SEED)[0]
    changed = helpers.host_node(LatentMultiply, noisy, 1.01)[0]
    with pytest.raises(ValueError) as error:
        denoise(model, conds, changed)
    message = str(error.value)
    assert "SDEdit 3 · Denoise" in message and "'noisy_latent'" in message and "keep region" in message
    assert "Fix:" in message and "Repeat Latent Batch" in message


def test_a_node_that_changes_values_without_a_mask_keeps_the_noise_level(model, conds, vae):
    latent = SDEditEncode.execute(image(1), vae)[0]
    noisy = SDEditAddNoise.execute(model, latent, 0.5, SEED)[0]
    out = denoise(model, conds, helpers.host_node(LatentMultiply, noisy, 1.0001)[0])[0]
    torch.testing.assert_close(out["samples"], denoise(model, conds, noisy)[0]["samples"], rtol=0.05, atol=0.05)


def test_decode_refuses_a_picture_it_cannot_attribute_when_it_has_a_keep_region(model, conds, vae):
    latent = SDEditEncode.execute(image(1), vae, mask=keep_left_mask())[0]
    out = denoise(model, conds, SDEditAddNoise.execute(model, latent, 0.5, SEED)[0])[0]
    with pytest.raises(ValueError) as error:
        SDEditDecode.execute(helpers.host_node(LatentMultiply, out, 1.01)[0], vae)
    assert "SDEdit 4 · Decode" in str(error.value) and "kept region" in str(error.value)


def test_decode_undoes_the_padding_of_a_changed_unmasked_picture(model, conds, vae):
    odd = image(2)[:, :60, :60]  # padded to 64 x 64 by Encode
    out = denoise(model, conds, SDEditAddNoise.execute(model, SDEditEncode.execute(odd, vae)[0], 0.5, SEED)[0])[0]
    changed = helpers.host_node(LatentMultiply, out, 1.001)[0]
    assert pictures.attribute(changed) == [None], "no record matches the changed row"
    decoded = SDEditDecode.execute(changed, vae)[0]
    assert decoded.shape == (1, 60, 60, 3), "the input's size, as for the unchanged latent"
    torch.testing.assert_close(decoded, SDEditDecode.execute(out, vae)[0], rtol=0.02, atol=0.02)


def test_the_message_names_the_nodes_between_from_the_prompt():
    prompt = {"1": {"class_type": "SDEditAddNoise", "inputs": {}},
              "2": {"class_type": "LatentMultiply", "inputs": {"samples": ["1", 0], "multiplier": 1.1}},
              "3": {"class_type": "Reroute", "inputs": {"x": ["2", 0]}},
              "4": {"class_type": "SDEditSampler", "inputs": {"noisy_latent": ["3", 0], "model": ["9", 0]}},
              "9": {"class_type": "CheckpointLoaderSimple", "inputs": {}}}
    assert pictures.nodes_between(prompt, "4", "noisy_latent") == "'Reroute' (#3), 'LatentMultiply' (#2)"
    assert pictures.nodes_between(None, None, "noisy_latent") == "a node between the SDEdit nodes"


def test_a_record_lives_only_as_long_as_a_latent_that_carries_it(vae):
    import gc
    latent = SDEditEncode.execute(image(4), vae)[0]
    row = pictures.carried(latent)[0].row
    assert pictures._alive.get(row) is not None
    del latent
    gc.collect()
    assert pictures._alive.get(row) is None


# --- repeats (the paper's K): the keep region always from the ORIGINAL picture ------------------------

def test_three_repeats_renoise_the_current_result_and_keep_the_original_guide(model, conds, vae):
    image = helpers.picture(5)
    latent = SDEditEncode.execute(image, vae, mask=helpers.left_keep_mask(48), mask_feather=4)[0]
    fmt = model.get_model_object("latent_format")
    ms = model.get_model_object("model_sampling")
    current, results = latent, []
    for k in range(3):
        noisy = SDEditAddNoise.execute(model, current, helpers.STRENGTH, helpers.SEED + k)[0]
        noise = comfy.sample.prepare_noise(current["samples"], helpers.SEED + k)
        expected = sm.add_noise(ms, fmt.process_in(current["samples"]), noise, sm.start_sigma(ms, helpers.STRENGTH))
        torch.testing.assert_close(fmt.process_in(noisy["samples"]), expected, rtol=1e-4, atol=1e-4,
                                   msg=f"round {k + 1} re-noises the current result")
        assert torch.equal(pictures.carried(noisy)[0].clean, latent["samples"][0]), "the keep region's source is the original"
        current = SDEditDenoise.execute(model, *conds, noisy, helpers.STEPS, 5.0, "euler", "normal", "proportional")[0]
        results.append(current["samples"])
    assert not torch.allclose(results[1][..., 6:], results[2][..., 6:])
    torch.testing.assert_close(current["samples"][..., :6], latent["samples"][..., :6], rtol=1e-4, atol=1e-4)
    decoded = SDEditDecode.execute(current, vae)[0]
    keep = masking.feather(helpers.left_keep_mask(48), 4)[0] == 0
    assert torch.equal(decoded[0][keep], image[0][keep])
