"""A read-only route that tells the canvas what SDEdit 3 · Denoise will run, computed by the backend's
own rule (sdedit_math.step_plan, start_sigma) so the canvas never re-derives it in JavaScript."""
import math

import comfy.model_sampling
from aiohttp import web

from .sdedit_math import STEP_MODES, start_sigma, step_plan

ROUTE = "/sdedit/step_plan"
_reference = None


def reference_model_sampling():
    """The canvas has no model loaded: it quotes sigma on SD1.5's noise schedule (the host's default)."""
    global _reference
    if _reference is None:
        _reference = comfy.model_sampling.ModelSamplingDiscrete()
    return _reference


def plan(strength: float, steps: int, step_mode: str) -> dict:
    run, of = step_plan(strength, steps, step_mode)
    return {"strength": strength, "steps": steps, "step_mode": step_mode, "run": run, "of": of,
            "sigma": start_sigma(reference_model_sampling(), strength)}


def parse(query) -> tuple[float, int, str]:
    """The query's (strength, steps, step_mode), or ValueError naming what is wrong."""
    try:
        strength, steps = float(query.get("strength", "")), int(query.get("steps", ""))
    except ValueError:
        raise ValueError("give strength (0-1) and steps (an integer >= 1) as query parameters") from None
    step_mode = query.get("step_mode", "proportional")
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {', '.join(STEP_MODES)}, got {step_mode!r}")
    return strength, steps, step_mode


async def step_plan_route(request: web.Request) -> web.Response:
    try:
        return web.json_response(plan(*parse(request.query)))
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)


def register(server) -> None:
    """Adds the route to the host's PromptServer (whose routes are mounted after custom nodes load)."""
    server.routes.get(ROUTE)(step_plan_route)
