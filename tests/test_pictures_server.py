"""The graphs of batch nodes and masks users wire, through a real `main.py --cpu` server, against the host's own
chain (VAE Encode → Set Latent Noise Mask → the batch node → SamplerCustomAdvanced over the pack's sigmas):
each picture's keep region comes back as its own input's latent and pixels, mixed strengths as if alone."""
import numpy as np
import pytest
import torch
from conftest import COMFYUI
from harness import ComfyServer, PromptFailed, prepare_workspace
from PIL import Image
from safetensors.torch import load_file

SIZE, KEEP, SEED, STEPS = 64, 32, 5, 4  # pixels; the left KEEP pixels are kept (4 latent columns)


def picture(kind: int) -> Image.Image:
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    rgb = np.stack([(x * (kind + 1)) % 1, (y + 0.3 * kind) % 1, (x + y) / 2], -1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_path):
    base = prepare_workspace(tmp_path_factory.mktemp("comfyui"), checkpoint_path)
    picture(1).save(base / "input" / "a.png")
    picture(2).save(base / "input" / "b.png")
    mask = np.full((SIZE, SIZE), 255, np.uint8)
    mask[:, :KEEP] = 0  # white = edit
    Image.fromarray(mask).save(base / "input" / "keep_left.png")
    with ComfyServer(COMFYUI, base) as running:
        yield running


def pixels(name: str) -> np.ndarray:
    return np.asarray(picture({"a": 1, "b": 2}[name]), dtype=np.int16)


class Graph:
    """An API-format prompt built node by node: `add` returns the node's id, `out(id, k)` a link to output k."""

    def __init__(self, checkpoint_path):
        self.prompt = {}
        self.ckpt = self.add("CheckpointLoaderSimple", ckpt_name=checkpoint_path.name)
        self.positive = self.add("CLIPTextEncode", text="a red boat", clip=[self.ckpt, 1])
        self.negative = self.add("CLIPTextEncode", text="blurry", clip=[self.ckpt, 1])
        self.mask = self.add("LoadImageMask", image="keep_left.png", channel="red")
        self.a = self.add("LoadImage", image="a.png")
        self.b = self.add("LoadImage", image="b.png")

    def add(self, class_type, **inputs) -> str:
        node_id = str(len(self.prompt) + 1)
        self.prompt[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def encode(self, image, masked=True):
        extra = {"mask": [self.mask, 0]} if masked else {}
        return self.add("SDEditEncode", image=[image, 0], vae=[self.ckpt, 2], mask_feather=0, size_mode="pad", **extra)

    def add_noise(self, latent, strength=0.6, seed=SEED):
        return self.add("SDEditAddNoise", model=[self.ckpt, 0], latent=[latent, 0], strength=strength, seed=seed)

    def denoise(self, noisy):
        return self.add("SDEditSampler", model=[self.ckpt, 0], positive=[self.positive, 0],
                        negative=[self.negative, 0], noisy_latent=[noisy, 0], steps=STEPS, cfg=5.0,
                        sampler_name="euler", scheduler="normal", step_mode="proportional")

    def sigmas(self, noisy):
        """The pack's schedule for `noisy`, from SDEdit 3 · Denoise (Custom)'s SIGMAS output."""
        guider = self.guider()
        sampler = self.add("KSamplerSelect", sampler_name="euler")
        return self.add("SDEditSamplerCustom", guider=[guider, 0], sampler=[sampler, 0], noisy_latent=[noisy, 0],
                        steps=STEPS, scheduler="normal", step_mode="proportional")

    def guider(self):
        return self.add("CFGGuider", model=[self.ckpt, 0], positive=[self.positive, 0],
                        negative=[self.negative, 0], cfg=5.0)

    def host(self, latent, sigmas_of):
        """The host's own chain from `latent` (already masked and batched): SamplerCustomAdvanced."""
        noise = self.add("RandomNoise", noise_seed=SEED)
        sampler = self.add("KSamplerSelect", sampler_name="euler")
        return self.add("SamplerCustomAdvanced", noise=[noise, 0], guider=[self.guider(), 0], sampler=[sampler, 0],
                        sigmas=[sigmas_of, 2], latent_image=[latent, 0])

    def host_masked(self, image):
        encoded = self.add("VAEEncode", pixels=[image, 0], vae=[self.ckpt, 2])
        return self.add("SetLatentNoiseMask", samples=[encoded, 0], mask=[self.mask, 0])

    def save_latent(self, latent, name):
        return self.add("SaveLatent", samples=[latent, 0], filename_prefix=f"latents/{name}")

    def save_image(self, latent, name):
        decoded = self.add("SDEditDecode", latent=[latent, 0], vae=[self.ckpt, 2])
        return self.add("SaveImage", images=[decoded, 0], filename_prefix=f"images/{name}")


def run(server, graph: Graph) -> dict:
    return server.run(graph.prompt)


def latent(server, entry, node_id) -> torch.Tensor:
    [saved] = entry["outputs"][node_id]["latents"]
    return load_file(server.base / "output" / saved["subfolder"] / saved["filename"])["latent_tensor"]


def images(server, entry, node_id) -> list:
    files = [server.base / "output" / i["subfolder"] / i["filename"] for i in entry["outputs"][node_id]["images"]]
    return [np.asarray(Image.open(f).convert("RGB"), dtype=np.int16) for f in files]


def assert_kept(got: np.ndarray, name: str):
    assert np.array_equal(got[:, :KEEP], pixels(name)[:, :KEEP]), f"the kept pixels are {name}.png's, bit for bit"
    assert np.abs(got[:, KEEP + 8:] - pixels(name)[:, KEEP + 8:]).mean() > 1, "the rest was edited"


def test_repeat_latent_batch_after_add_noise(server, checkpoint_path):
    g = Graph(checkpoint_path)
    clean = g.encode(g.a)
    noisy = g.add_noise(clean)
    denoised = g.denoise(g.add("RepeatLatentBatch", samples=[noisy, 0], amount=2))
    ids = {"pack": g.save_latent(denoised, "rep"), "clean": g.save_latent(clean, "clean"),
           "host": g.save_latent(g.host(g.host_masked(g.a), g.sigmas(noisy)), "host"),
           "images": g.save_image(denoised, "rep")}
    entry = run(server, g)
    pack, host, clean = (latent(server, entry, ids[k]) for k in ("pack", "host", "clean"))
    assert pack.shape[0] == 2
    for row in range(2):
        torch.testing.assert_close(pack[row:row + 1], host, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(pack[row, ..., :4], clean[0, ..., :4], rtol=1e-5, atol=1e-5)
    decoded = images(server, entry, ids["images"])
    assert len(decoded) == 2
    for image in decoded:
        assert_kept(image, "a")


def test_latent_from_batch_of_two_pictures(server, checkpoint_path):
    g = Graph(checkpoint_path)
    both = g.add("ImageBatch", image1=[g.a, 0], image2=[g.b, 0])
    noisy = g.add_noise(g.encode(both))
    denoised = g.denoise(g.add("LatentFromBatch", samples=[noisy, 0], batch_index=1, length=1))
    host_latent = g.add("LatentFromBatch", samples=[g.host_masked(both), 0], batch_index=1, length=1)
    ids = {"pack": g.save_latent(denoised, "pick"), "host": g.save_latent(g.host(host_latent, g.sigmas(noisy)), "h"),
           "images": g.save_image(denoised, "pick")}
    entry = run(server, g)
    torch.testing.assert_close(latent(server, entry, ids["pack"]), latent(server, entry, ids["host"]),
                               rtol=1e-4, atol=1e-4)
    [image] = images(server, entry, ids["images"])
    assert_kept(image, "b")


def test_repeat_latent_batch_before_add_noise(server, checkpoint_path):
    g = Graph(checkpoint_path)
    repeated = g.add("RepeatLatentBatch", samples=[g.encode(g.a), 0], amount=2)
    noisy = g.add_noise(repeated)
    denoised = g.denoise(noisy)
    host_latent = g.add("RepeatLatentBatch", samples=[g.host_masked(g.a), 0], amount=2)
    ids = {"pack": g.save_latent(denoised, "rep2"), "host": g.save_latent(g.host(host_latent, g.sigmas(noisy)), "h"),
           "images": g.save_image(denoised, "rep2")}
    entry = run(server, g)
    torch.testing.assert_close(latent(server, entry, ids["pack"]), latent(server, entry, ids["host"]),
                               rtol=1e-4, atol=1e-4)
    decoded = images(server, entry, ids["images"])
    assert len(decoded) == 2 and not np.array_equal(decoded[0], decoded[1])
    for image in decoded:
        assert_kept(image, "a")


def test_latent_batch_of_two_strengths_equals_each_alone(server, checkpoint_path):
    g = Graph(checkpoint_path)
    low = g.add_noise(g.encode(g.a, masked=False), strength=0.3, seed=1)
    high = g.add_noise(g.encode(g.b, masked=False), strength=0.8, seed=2)
    both = g.denoise(g.add("LatentBatch", samples1=[low, 0], samples2=[high, 0]))
    ids = {"both": g.save_latent(both, "both"), "low": g.save_latent(g.denoise(low), "low"),
           "high": g.save_latent(g.denoise(high), "high")}
    entry = run(server, g)
    mixed = latent(server, entry, ids["both"])
    assert torch.equal(mixed[0:1], latent(server, entry, ids["low"])), "picture 1 denoised from strength 0.3"
    assert torch.equal(mixed[1:2], latent(server, entry, ids["high"])), "picture 2 denoised from strength 0.8"


def test_rebatch_latents_of_two_masked_pictures(server, checkpoint_path):
    g = Graph(checkpoint_path)
    both = g.add("ImageBatch", image1=[g.a, 0], image2=[g.b, 0])
    noisy = g.add_noise(g.encode(both))
    parts = g.add("RebatchLatents", latents=[noisy, 0], batch_size=1)
    saved = g.save_image(g.denoise(parts), "rebatch")
    entry = run(server, g)
    first, second = images(server, entry, saved)
    assert_kept(first, "a")
    assert_kept(second, "b")


def test_a_node_the_pack_cannot_follow_is_named_in_the_error(server, checkpoint_path):
    g = Graph(checkpoint_path)
    noisy = g.add_noise(g.encode(g.a))
    changed = g.add("LatentMultiply", samples=[noisy, 0], multiplier=1.05)
    g.save_image(g.denoise(changed), "refused")
    with pytest.raises(PromptFailed) as failed:
        server.run(g.prompt)
    message = str(failed.value)
    assert f"'LatentMultiply' (#{changed})" in message and "SDEdit 3 · Denoise" in message and "Fix:" in message
    assert server.alive()
