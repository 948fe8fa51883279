"""What Add Noise tells Denoise, carried inside the LATENT dict (the host's way to pass extras).

Every host node that copies a LATENT keeps the entry, so a noisy latent can go through
e.g. a latent batch or upscale node and still be denoised from the right level.
"""
from dataclasses import asdict, dataclass

KEY = "sdedit_noise"


@dataclass(frozen=True)
class NoiseInfo:
    sigma: float     # the noise level the latent was brought to (host sigma units)
    strength: float  # the strength that chose it; "proportional" step counts need it
    seed: int        # ancestral and SDE samplers draw their fresh noise from it
    noise_kind: str = ""  # how the model added it (checks.noise_kind); "" from older latents

    def attach(self, latent: dict) -> dict:
        out = latent.copy()
        out[KEY] = asdict(self)
        return out


def read(latent: dict) -> NoiseInfo | None:
    info = latent.get(KEY)
    return None if info is None else NoiseInfo(**info)


def strip(latent: dict) -> dict:
    out = latent.copy()
    out.pop(KEY, None)
    return out
