"""Routing maps of a mixture-of-experts pose generator: Sign-MExD's Fig. 3 ("Heterogeneous compute allocation").

Fig. 3 of the paper is a heatmap of the *active expert frequency* of each gloss token of one prompt: which experts
process the signing of each gloss, and how often. Expert-choice routing (eqs. 5-8) routes pose-frame tokens, not
gloss tokens, so the map is built in two steps:

1. `gloss_expert_frequency`: for every gloss, the frames the pipeline's length model gives it (`info["gloss_spans"]`)
   and, for every expert, the fraction of those frames' routing decisions in which the expert took the frame, over
   all denoising steps: `count[g, e] / (frames(g) * num_steps)` with `count` from `info["routing"]`'s
   `expert_frame_counts`. A value of 1 means the expert processed every frame of the gloss at every step. With
   capacity factor `f_c` a frame is taken by `f_c` experts on average over the sequence, so a row summing above
   `f_c` marks a gloss that gets more computation than the average frame, one below it less. The paper does
   not say which layer it draws; its Table I models have one MoE layer, and `hf-sign plot routing --layer` picks one
   when there are several (default: the last).
2. `routing_heatmap` (`save_routing_heatmap` writes it; `plot_routing`, what `hf-sign plot routing` calls, runs a
   pipeline first): glosses as rows, experts as columns, white (0) to dark blue (1), each cell labelled with its
   value, a colour bar on the right; glosses the model's vocabulary lacks are marked `(UNK)`. Pillow only.

```python
>>> from hf_sign.render.routing import gloss_expert_frequency, save_routing_heatmap
>>> out = pipe(gloss="TOMORROW WEATHER RAIN", return_routing=True)
>>> info = out.info[0]
>>> layer = info["routing"]["layers"][-1]
>>> freq = gloss_expert_frequency(layer["expert_frame_counts"], info["routing"]["num_steps"], info["gloss_spans"])
>>> save_routing_heatmap(freq, info["glosses"], "routing.png")
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .frames import _font, _text_fit

__all__ = ["gloss_expert_frequency", "heatmap_size", "routing_heatmap", "save_routing_heatmap", "plot_routing"]

# the layout in pixels: a fixed label column and fixed cells, so a map's size follows from its shape alone
LABEL_WIDTH, CELL_WIDTH, CELL_HEIGHT = 170, 44, 26
TITLE_HEIGHT, HEADER_HEIGHT, FOOTER_HEIGHT, BAR_WIDTH = 30, 24, 26, 70
LOW, HIGH, MISSING = np.array([255, 255, 255]), np.array([8, 48, 107]), (200, 200, 200)


def gloss_expert_frequency(
    expert_frame_counts: Union[Sequence[Sequence[float]], np.ndarray],
    num_steps: int,
    gloss_spans: Sequence[Sequence[int]],
) -> np.ndarray:
    """Active expert frequency per gloss, `(num_glosses, num_experts)` in [0, 1].

    Args:
        expert_frame_counts (`(num_frames, num_experts)`): per frame, in how many denoising steps each expert took it.
        num_steps (`int`): the denoising steps counted.
        gloss_spans (`Sequence[[start, end)]`): the frames of each gloss. A gloss without frames gets NaN.
    """
    counts = np.asarray(expert_frame_counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] < 1:
        raise ValueError(f"`expert_frame_counts` must have shape (num_frames, num_experts); got {counts.shape}.")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive int; got {num_steps!r}.")
    if counts.max(initial=0) > num_steps or counts.min(initial=0) < 0:
        raise ValueError(f"`expert_frame_counts` must lie in [0, num_steps={num_steps}].")
    out = np.full((len(gloss_spans), counts.shape[1]), np.nan)
    for g, (a, b) in enumerate(gloss_spans):
        if not 0 <= a <= b <= counts.shape[0]:
            raise ValueError(f"`gloss_spans[{g}]` = [{a}, {b}) is not inside the {counts.shape[0]} frames.")
        if b > a:
            out[g] = counts[a:b].sum(0) / ((b - a) * num_steps)
    return out


def heatmap_size(num_glosses: int, num_experts: int) -> Tuple[int, int]:
    """`(width, height)` in pixels of the map of `num_glosses` x `num_experts`."""
    width = LABEL_WIDTH + num_experts * CELL_WIDTH + BAR_WIDTH
    height = TITLE_HEIGHT + HEADER_HEIGHT + num_glosses * CELL_HEIGHT + FOOTER_HEIGHT
    return width, height


def _color(value: float) -> Tuple[int, int, int]:
    if not np.isfinite(value):
        return MISSING
    v = float(np.clip(value, 0.0, 1.0))
    return tuple(int(round(c)) for c in LOW + (HIGH - LOW) * v)


def routing_heatmap(
    frequency: np.ndarray,
    glosses: Sequence[str],
    title: Optional[str] = None,
    unknown: Sequence[str] = (),
) -> Image.Image:
    """The heatmap of `frequency` (`(num_glosses, num_experts)`, from `gloss_expert_frequency`) as an RGB image.

    Args:
        frequency (`np.ndarray`): active expert frequency per gloss (NaN: a gloss without frames, drawn grey).
        glosses (`Sequence[str]`): one label per row.
        title (`str`, *optional*): the line above the map (default: "active expert frequency per gloss").
        unknown (`Sequence[str]`, *optional*): glosses outside the model's vocabulary, labelled `(UNK)`.
    """
    frequency = np.asarray(frequency, dtype=np.float64)
    if frequency.ndim != 2 or frequency.shape[0] != len(glosses) or frequency.shape[0] < 1:
        raise ValueError(
            f"`frequency` must have shape (num_glosses={len(glosses)}, num_experts); got {frequency.shape}."
        )
    num_glosses, num_experts = frequency.shape
    image = Image.new("RGB", heatmap_size(num_glosses, num_experts), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    draw.text((8, 8), title or "active expert frequency per gloss", fill="black", font=font)
    top = TITLE_HEIGHT + HEADER_HEIGHT
    for e in range(num_experts):  # 1. expert labels
        x = LABEL_WIDTH + e * CELL_WIDTH + CELL_WIDTH // 2
        draw.text((x, TITLE_HEIGHT + HEADER_HEIGHT // 2), f"E{e}", fill="black", font=small, anchor="mm")
    unknown = set(unknown)
    for g, gloss in enumerate(glosses):  # 2. rows: the gloss label, then one cell per expert
        y = top + g * CELL_HEIGHT
        label = _text_fit(draw, f"{gloss} (UNK)" if gloss in unknown else gloss, font, LABEL_WIDTH - 12)
        draw.text((LABEL_WIDTH - 6, y + CELL_HEIGHT // 2), label, fill="black", font=font, anchor="rm")
        for e in range(num_experts):
            value = frequency[g, e]
            x = LABEL_WIDTH + e * CELL_WIDTH
            box = [x, y, x + CELL_WIDTH - 1, y + CELL_HEIGHT - 1]
            draw.rectangle(box, fill=_color(value), outline=(235, 235, 235))
            text = f"{value:.2f}" if np.isfinite(value) else "-"
            ink = "white" if np.isfinite(value) and value > 0.55 else "black"
            draw.text((x + CELL_WIDTH // 2, y + CELL_HEIGHT // 2), text, fill=ink, font=small, anchor="mm")
    x0 = LABEL_WIDTH + num_experts * CELL_WIDTH + 16  # 3. colour bar from 0 (bottom) to 1 (top)
    bar_top, bar_bottom = top, top + num_glosses * CELL_HEIGHT - 1
    for y in range(bar_top, bar_bottom + 1):
        value = 1.0 - (y - bar_top) / max(1, bar_bottom - bar_top)
        draw.line([x0, y, x0 + 14, y], fill=_color(value))
    draw.text((x0 + 18, bar_top), "1", fill="black", font=small, anchor="lt")
    draw.text((x0 + 18, bar_bottom), "0", fill="black", font=small, anchor="lb")
    draw.text((8, image.height - FOOTER_HEIGHT + 6), "rows: glosses, columns: experts", fill="gray", font=small)
    return image


def save_routing_heatmap(
    frequency: np.ndarray,
    glosses: Sequence[str],
    path: Union[str, os.PathLike],
    title: Optional[str] = None,
    unknown: Sequence[str] = (),
) -> Path:
    """Write `routing_heatmap(...)` to `path` (a `.png` file); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`out` must be a .png file; got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    routing_heatmap(frequency, glosses, title=title, unknown=unknown).save(path)
    return path


def plot_routing(
    pipe: Any, glosses: Sequence[str], path: Union[str, os.PathLike], layer: int = -1, **call_kwargs: Any
) -> Dict[str, Any]:
    """Sign `glosses` with `pipe` (a pipeline whose `__call__` takes `return_routing`, such as `SignMExDPipeline`)
    and write the routing map of its MoE layer `layer` (in block order; default the last) to `path`.

    `call_kwargs` go to the pipeline (`generator`, `num_inference_steps`, ...). Returns a summary: `glosses`,
    `experts`, `frames`, `unknown_glosses`, `frequency`. Raises a `ValueError` for a pipeline without routing, a
    dense model and a `layer` it does not have.
    """
    import inspect

    if "return_routing" not in inspect.signature(pipe.__call__).parameters:
        raise ValueError(
            f"A {type(pipe).__name__} reports no expert routing; a routing map needs a mixture-of-experts pipeline "
            "(Sign-MExD)."
        )
    out = pipe(gloss=[list(glosses)], return_routing=True, **call_kwargs)
    info = out.info[0]
    layers = info["routing"]["layers"]
    if not layers:
        raise ValueError("The model has no MoE layer (a dense transformer): there is no routing to plot.")
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"`layer` must index one of the model's {len(layers)} MoE layer(s); got {layer}.")
    steps = info["routing"]["num_steps"]
    freq = gloss_expert_frequency(layers[layer]["expert_frame_counts"], steps, info["gloss_spans"])
    title = f"active expert frequency per gloss: MoE layer {layer % len(layers) + 1} of {len(layers)}, {steps} steps"
    save_routing_heatmap(freq, info["glosses"], path, title=title, unknown=info["unknown_glosses"])
    return {"glosses": freq.shape[0], "experts": freq.shape[1], "frames": int(out.num_frames[0]),
            "unknown_glosses": list(info["unknown_glosses"]), "frequency": freq}
