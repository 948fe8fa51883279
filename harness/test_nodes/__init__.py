"""Test-only custom node, never part of the pack: installed into a test server's custom_nodes folder
(harness.prepare_workspace(..., test_nodes=True)) in place of a text encoder that cannot exist on a test
machine (Wan's umt5-xxl has 5.7 B parameters).

SDEditTestRandomConditioning: seeded N(0, 1) conditioning of a text encoder's shape, [1, tokens, width]
(Wan 2.1's umt5-xxl: [1, 512, 4096]), in the host's CONDITIONING format. Standard library and torch only.
"""
import torch


class SDEditTestRandomConditioning:
    CATEGORY = "testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    DESCRIPTION = "Seeded random conditioning of a text encoder's shape (tests only)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 31 - 1}),
                             "tokens": ("INT", {"default": 512, "min": 1, "max": 4096}),
                             "width": ("INT", {"default": 4096, "min": 1, "max": 16384})}}

    def make(self, seed, tokens, width):
        generator = torch.Generator().manual_seed(seed)
        return ([[torch.randn(1, tokens, width, generator=generator), {}]],)


NODE_CLASS_MAPPINGS = {"SDEditTestRandomConditioning": SDEditTestRandomConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"SDEditTestRandomConditioning": "Random Conditioning (SDEdit tests)"}
