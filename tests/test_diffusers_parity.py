"""Strength semantics against diffusers' StableDiffusionImg2ImgPipeline, used as a test-only oracle.

Only its weight-free parts run: the SD1.5 scheduler config and the pipeline's own `get_timesteps`.
diffusers truncates N*s where this pack rounds, and DDIM's "leading" spacing starts at t = 981, so
the targets are: the same number of steps within one, and a start within 1.5 schedule steps.
"""
import types

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline
from sdedit_img2img.nodes import sdedit_math as sm
from helpers import eps_sampling

SD15_SCHEDULER_CONFIG = {  # runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "steps_offset": 1, "skip_prk_steps": True,
    "trained_betas": None,
}
STEPS = 50
STRENGTHS = [round(0.20 + 0.05 * i, 2) for i in range(15)]  # 0.20, 0.25, ... 0.90


def diffusers_img2img_timesteps(scheduler_cls, strength):
    scheduler = scheduler_cls.from_config(SD15_SCHEDULER_CONFIG)
    scheduler.set_timesteps(STEPS)
    pipe = types.SimpleNamespace(scheduler=scheduler)  # get_timesteps reads nothing else
    timesteps, count = StableDiffusionImg2ImgPipeline.get_timesteps(pipe, STEPS, strength, "cpu")
    return timesteps, count


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, EulerDiscreteScheduler])
@pytest.mark.parametrize("strength", STRENGTHS)
def test_proportional_mode_matches_diffusers_img2img(scheduler_cls, strength):
    ms = eps_sampling()
    timesteps, count = diffusers_img2img_timesteps(scheduler_cls, strength)
    assert count == len(timesteps)

    sigmas = sm.sdedit_sigmas(ms, "normal", STEPS, strength, sm.start_sigma(ms, strength), "proportional")
    our_steps = len(sigmas) - 1
    assert abs(our_steps - count) <= 1

    our_start_t = float(ms.timestep(sigmas[0]))
    schedule_step = 1000 / STEPS
    assert abs(our_start_t - float(timesteps[0])) <= 1.5 * schedule_step, (our_start_t, float(timesteps[0]))


def test_the_oracle_is_sensitive():
    """A pack that took 1 - strength, or ran all the steps, would fail the test above."""
    ms = eps_sampling()
    timesteps, count = diffusers_img2img_timesteps(DDIMScheduler, 0.3)
    wrong_start_t = float(ms.timestep(torch.tensor(sm.start_sigma(ms, 0.7))))
    assert abs(wrong_start_t - float(timesteps[0])) > 1.5 * 1000 / STEPS
    assert abs(STEPS - count) > 1
