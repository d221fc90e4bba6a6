"""Where does the model look? Grad-CAM class-activation maps (Selvaraju et al. 2017) from
captum's ``LayerGradCam``, on the model's last feature map (``model.head`` by default).

The map is computed on exactly the tensor the model classifies: the image goes through the
model's own eval transform (:func:`effnet.data.eval_transform`), and the picture the overlay is
drawn on is that same tensor with the normalisation undone, so map and picture line up pixel for
pixel whatever the resize and center crop did to the original file.

Grad-CAM needs gradients: the model runs in eval mode (BatchNorm statistics, no dropout) with
autograd enabled, and its train/eval mode is restored afterwards. captum is an optional
dependency (``pip install 'effnet[report]'``), imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from effnet.data import UnreadableImageError, eval_transform, load_image
from effnet.data.transforms import normalize_stats, resolve_in_chans, resolve_preprocess

__all__ = [
    "Explained",
    "Explanation",
    "explain_files",
    "explain_images",
    "grad_cam",
    "model_view",
    "overlay",
    "target_layer",
]

COLORMAP = "turbo"


def _captum():
    try:
        from captum.attr import LayerAttribution, LayerGradCam
    except ImportError as exc:
        raise ImportError(
            "class-activation maps need captum: pip install captum (or 'effnet[report]')"
        ) from exc
    return LayerGradCam, LayerAttribution


def target_layer(model: nn.Module) -> nn.Module:
    """The layer whose output Grad-CAM explains: the last feature map before pooling.

    For effnet models that is ``model.head`` (the 1x1 conv to the feature width, stride 32);
    a model without one uses its last stage.
    """
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
        return head
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential) and len(stages):
        return stages[-1]
    raise TypeError(
        f"{type(model).__name__} has neither a .head nor .stages; pass the layer to explain "
        "(layer=model.some_conv_block)"
    )


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: Sequence[int | None] | torch.Tensor | None = None,
    layer: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM maps for a batch of preprocessed images.

    ``inputs``: (N, C, H, W), already through the model's eval transform. ``targets``: the
    class each map explains (``None``, or an entry ``None``: the predicted class).

    Returns ``(maps, logits)``: maps (N, H, W) in [0, 1] at the input resolution (bilinear
    upsampling of the layer's grid; all zeros where nothing speaks for the class) and the
    logits (N, num_classes).
    """
    layer_grad_cam, layer_attribution = _captum()
    layer = target_layer(model) if layer is None else layer
    device = next(model.parameters()).device
    given = None if targets is None else [None if t is None else int(t) for t in list(targets)]
    if given is not None and len(given) != len(inputs):
        raise ValueError(f"got {len(inputs)} images but {len(given)} targets")
    was_training = model.training
    model.eval()
    seen: list[torch.Tensor] = []
    # the logits of captum's own forward pass: no second pass when every target is known
    hook = model.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().float()))
    try:
        # inference_mode(False) + enable_grad: callers often sit inside inference code
        with torch.inference_mode(False), torch.enable_grad():
            x = inputs.detach().clone().to(device)
            if given is None or None in given:
                with torch.no_grad():
                    predicted = model(x).argmax(1).tolist()
                given = [p if t is None else t for t, p in zip(given or predicted, predicted)]
            chosen = torch.tensor(given, dtype=torch.long, device=device)
            seen.clear()
            cam = layer_grad_cam(model, layer).attribute(x, target=chosen, relu_attributions=True)
            cam = layer_attribution.interpolate(cam.detach(), tuple(x.shape[-2:]), "bilinear")
    finally:
        hook.remove()
        model.train(was_training)
    maps = cam[:, 0].float().cpu()  # (N, H, W), >= 0 after the ReLU
    low = maps.flatten(1).amin(1).reshape(-1, 1, 1)
    span = maps.flatten(1).amax(1).reshape(-1, 1, 1) - low
    maps = torch.where(span > 1e-12, (maps - low) / span.clamp_min(1e-12), 0.0)
    return maps.clamp(0, 1), seen[0].cpu()


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a [0, 1] heat map onto an (H, W, 3) uint8 picture; weak areas stay unchanged."""
    from matplotlib import colormaps

    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    colour = colormaps[COLORMAP](heat)[..., :3].astype(np.float32) * 255.0
    weight = alpha * heat[..., None]
    out = image.astype(np.float32) * (1.0 - weight) + colour * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass
class Explanation:
    """One image, as the model saw it, with the map of what decided its class."""

    image: np.ndarray
    """(H, W, 3) uint8: the model's input tensor with the normalisation undone."""
    heatmap: np.ndarray
    """(H, W) float32 in [0, 1], aligned with :attr:`image`."""
    target: int
    """The class the map explains."""
    probs: list[float]
    """Class probabilities (temperature-scaled when a temperature was given)."""
    path: str | None = None

    def overlay(self, alpha: float = 0.6) -> np.ndarray:
        return overlay(self.image, self.heatmap, alpha)


def _denormalise(batch: torch.Tensor, model: nn.Module) -> np.ndarray:
    """(N, C, H, W) normalised tensor -> (N, H, W, 3) uint8 picture of what the model saw."""
    mean, std = normalize_stats(resolve_preprocess(model), resolve_in_chans(model))
    m = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    pixels = (batch.float().cpu() * s + m).clamp(0, 1)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return (pixels * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def model_view(model: nn.Module, images: Sequence[Image.Image]) -> list[np.ndarray]:
    """The pictures as the model sees them (its eval transform, normalisation undone), as
    (H, W, 3) uint8 arrays: what the report shows when no map can be drawn."""
    if not images:
        return []
    transform = eval_transform(model)
    return list(_denormalise(torch.stack([transform(img) for img in images]), model))


def explain_images(
    model: nn.Module,
    images: Sequence[Image.Image],
    targets: Sequence[int | None] | None = None,
    *,
    layer: nn.Module | None = None,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> list[Explanation]:
    """Grad-CAM for PIL images; each target ``None`` (or no ``targets``) explains the
    predicted class."""
    transform = eval_transform(model)
    wanted = list(targets) if targets is not None else [None] * len(images)
    if len(wanted) != len(images):
        raise ValueError(f"got {len(images)} images but {len(wanted)} targets")
    out: list[Explanation] = []
    for start in range(0, len(images), batch_size):
        x = torch.stack([transform(img) for img in images[start : start + batch_size]])
        chunk = wanted[start : start + batch_size]
        maps, logits = grad_cam(model, x, chunk, layer)
        probs = (logits / temperature).softmax(1)
        pictures = _denormalise(x, model)
        for i, t in enumerate(chunk):
            target = int(logits[i].argmax()) if t is None else int(t)
            out.append(Explanation(pictures[i], maps[i].numpy(), target, probs[i].tolist()))
    return out


@dataclass
class Explained:
    """What :func:`explain_files` wrote: one overlay PNG per readable image."""

    files: dict[str, Path] = field(default_factory=dict)
    """input path -> overlay PNG."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for every file that could not be read."""


def _caption(ex: Explanation, names: Sequence[str]) -> str:
    name = names[ex.target] if ex.target < len(names) else str(ex.target)
    return f"{name}  {ex.probs[ex.target]:.1%}"


def _side_by_side(ex: Explanation, caption: str) -> Image.Image:
    """The picture the model saw, and the same picture with the map, captioned."""
    h, w = ex.image.shape[:2]
    scale = max(1, 224 // max(h, w))  # small inputs are enlarged (nearest) to stay legible
    left = Image.fromarray(ex.image).resize((w * scale, h * scale), Image.NEAREST)
    right = Image.fromarray(ex.overlay()).resize((w * scale, h * scale), Image.NEAREST)
    bar = 18
    canvas = Image.new("RGB", (2 * w * scale + 4, h * scale + bar), "white")
    canvas.paste(left, (0, bar))
    canvas.paste(right, (w * scale + 4, bar))
    ImageDraw.Draw(canvas).text((3, 3), caption, fill="black")
    return canvas


def _unique(out_dir: Path, stem: str, used: set[str]) -> Path:
    name, k = f"{stem}.cam.png", 1
    while name in used:
        k += 1
        name = f"{stem}-{k}.cam.png"
    used.add(name)
    return out_dir / name


def explain_files(
    model: nn.Module,
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    target: int | None = None,
    layer: nn.Module | None = None,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> Explained:
    """Write ``OUT_DIR/<name>.cam.png`` for every image: the model's view of it beside the
    Grad-CAM overlay, captioned with the explained class and its probability.

    ``target`` explains one class for every image (default: each image's predicted class).
    Directories are expanded to their images; unreadable files are reported, not fatal.
    This is ``effnet predict IMAGES --checkpoint RUN --explain OUT_DIR``.
    """
    from effnet.predict import expand_inputs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(getattr(model, "class_names", None) or [])
    result = Explained()
    files = expand_inputs(paths)
    used: set[str] = set()
    for start in range(0, len(files), batch_size):
        images, kept = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(load_image(path))
                kept.append(path)
            except UnreadableImageError as exc:
                result.skipped.append((str(path), exc.reason))
        if not images:
            continue
        found = explain_images(
            model,
            images,
            [target] * len(images),
            layer=layer,
            temperature=temperature,
            batch_size=batch_size,
        )
        for path, ex in zip(kept, found):
            dest = _unique(out, Path(path).stem, used)
            _side_by_side(ex, _caption(ex, names)).save(dest)
            result.files[str(path)] = dest
    return result
