"""Masks for local edits, apart from any UI: fitting a MASK to an image, feathering it inside its
edge, and compositing the kept pixels back. Convention of the host: 1 = edit, 0 = keep."""
import torch
import torch.nn.functional as F


def fit_mask(mask: torch.Tensor, batch: int, height: int, width: int, node: str, input_name: str) -> torch.Tensor:
    """MASK (h, w) or (b, h, w) -> (b or 1, height, width) in [0, 1]: resized (bilinear) when its size
    differs, a batch of 1 broadcasts; any other batch that is not `batch` is an error naming the input."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"{node}: input '{input_name}' has shape {tuple(mask.shape)}; a MASK is "
                         "(height, width) or (batch, height, width). Connect a MASK output (Load Image's "
                         "mask, Load Image (as Mask), the mask editor).")
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"{node}: input '{input_name}' holds {mask.shape[0]} masks but the image batch "
                         f"has {batch}. Fix: give one mask (it is used for every image) or one per image.")
    mask = mask.float()
    if tuple(mask.shape[1:]) != (height, width):
        mask = F.interpolate(mask.unsqueeze(1), size=(height, width), mode="bilinear").squeeze(1)
    return mask.clamp(0.0, 1.0)


def feather(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """The mask faded in over `pixels` pixels inside its edge; the keep region (0) stays exactly 0.

    Mean of the mask eroded 0 .. pixels-1 times (3x3, chessboard distance): a pixel k steps inside
    the edit region gets k / pixels, so the ramp runs 1/pixels, 2/pixels, ..., 1. The picture's own
    border is not an edge (replicate padding).
    """
    if pixels <= 0:
        return mask
    m = mask.unsqueeze(1)
    total = torch.zeros_like(m)
    eroded = m
    for _ in range(pixels):
        total += eroded
        eroded = -F.max_pool2d(F.pad(-eroded, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (total / pixels).squeeze(1)


def to_latent_frames(mask: torch.Tensor, latent_frames: int) -> torch.Tensor | None:
    """One video's per-frame masks (F, 1, H, W) -> (1, 1, T, H, W) on the VAE's own groups: a causal video VAE
    (Wan, Hunyuan, LTXV) encodes frame 0 alone, then each run of r = (F - 1) / (T - 1) frames (4, or 8 for
    LTXV) into one latent frame. Each latent frame takes the largest value of its group (its most edited
    frame), as a latent cell takes its most edited pixel: a group that mixes keep and edit is edited, and its
    kept frames come back from the input's pixels in Decode. None where F is not 1 + r (T - 1): no such
    grouping to follow (the host's own interpolation in time applies)."""
    frames = mask.shape[0]
    if latent_frames < 1 or (latent_frames == 1 and frames != 1):
        return None
    if latent_frames > 1 and (frames - 1) % (latent_frames - 1):
        return None
    r = (frames - 1) // (latent_frames - 1) if latent_frames > 1 else 1
    groups = [mask[:1]] + [mask[1 + k * r:1 + (k + 1) * r] for k in range(latent_frames - 1)]
    return torch.stack([g.amax(dim=0) for g in groups], dim=1).unsqueeze(0)  # (1, 1 channel, T, H, W)


def composite(original: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """IMAGE `edited` wherever the mask is above 0, `original` (bit for bit) where it is 0. A grey value is a
    strength (nodes/strength_map.py), already applied while denoising: it is not blended a second time."""
    m = mask.unsqueeze(-1).to(edited.dtype)
    original = original.to(edited.device, edited.dtype)
    # Written as the blend at weight 1, as it always was, so binary masks keep their results bit for bit.
    return torch.where(m > 0, original + (edited - original), original)
