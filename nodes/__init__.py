"""SDEdit image-to-image as four ComfyUI nodes, one module per node, named after what the user sees:

SDEdit 1 · Encode (encode.py) → 2 · Add Noise (add_noise.py) → 3 · Denoise (denoise.py, with its Custom
twin for the host's GUIDER and SAMPLER, over the sampling engine in engine.py; or 3 · FlowEdit, flowedit.py)
→ 4 · Decode (decode.py).
sdedit_math.py holds the maths they share, free of any UI; pictures.py the record each picture carries
between them; sweep.py runs the four at several strengths side by side (its arithmetic in sweep_math.py).
"""
import sys

from typing_extensions import override

from . import example_inputs, routes
from .add_noise import SDEditAddNoise
from .common import ComfyExtension, io
from .decode import SDEditDecode
from .denoise import SDEditDenoise, SDEditDenoiseCustom
from .encode import SDEditEncode
from .flowedit import SDEditFlowEdit
from .sweep import SDEditStrengthSweep


class SDEditExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [SDEditEncode, SDEditAddNoise, SDEditDenoise, SDEditDenoiseCustom, SDEditFlowEdit, SDEditDecode,
                SDEditStrengthSweep]


async def comfy_entrypoint() -> SDEditExtension:
    # Here rather than in on_load, which ComfyUI 0.3.64 never calls. In-process use has no server (and no
    # template browser): no route, no pictures offered.
    server = sys.modules.get("server")
    if getattr(getattr(server, "PromptServer", None), "instance", None) is not None:
        routes.register(server.PromptServer.instance)
        example_inputs.offer()
    return SDEditExtension()
