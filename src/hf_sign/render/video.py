"""Writing rendered frames `(T, H, W, 3)` uint8 to GIF or MP4.

* GIF goes through Pillow (via imageio). Pillow merges *identical consecutive* frames into one frame
  with the summed duration, so a GIF read back can hold fewer frames than were written when the
  figure stands still; playback time is unchanged. GIF delays are stored in 1/100 s, so the frame
  rate is rounded (24 fps plays at 25 fps).
* MP4 goes through imageio's FFMPEG plugin and the ffmpeg binary bundled with `imageio-ffmpeg`
  (H.264, yuv420p so that browsers and players open it). yuv420p needs even width and height: odd
  sizes are padded by one background-coloured row/column (never resized).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
from tqdm.auto import tqdm

from .frames import AUTO_PROGRESS_FRAMES, BACKGROUND

VIDEO_EXTENSIONS = (".gif", ".mp4")


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"`frames` must have shape (num_frames >= 1, height, width, 3); got {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"`frames` must be uint8 (0..255); got dtype {frames.dtype}.")
    return frames


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float, np.floating, np.integer)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"`fps` must be a positive number; got {fps!r}.")
    return float(fps)


def save_gif(frames: np.ndarray, path: Union[str, Path], fps: float, loop: bool = True) -> Path:
    """Write `frames` `(T, H, W, 3)` uint8 as an animated GIF.

    Args:
        frames (`np.ndarray`): RGB frames, e.g. from `draw_frames`.
        path (`str` or `Path`): output file; parent folders are created.
        fps (`float`): frames per second.
        loop (`bool`, defaults to `True`): loop forever when played.

    Returns:
        `Path` of the written file.
    """
    import imageio.v3 as iio

    frames, fps = _check_frames(frames), _check_fps(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"duration": 1000.0 / fps}
    if loop:
        kwargs["loop"] = 0
    iio.imwrite(path, frames, extension=".gif", plugin="pillow", **kwargs)
    return path


def _even(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    out = np.empty((frames.shape[0], h + ph, w + pw, 3), dtype=np.uint8)
    out[:] = np.asarray(BACKGROUND, dtype=np.uint8)
    out[:, :h, :w] = frames
    return out


def save_mp4(
    frames: np.ndarray,
    path: Union[str, Path],
    fps: float,
    quality: float = 8.0,
    show_progress: Optional[bool] = None,
) -> Path:
    """Write `frames` `(T, H, W, 3)` uint8 as an H.264 MP4 (yuv420p) with the bundled ffmpeg.

    Args:
        frames (`np.ndarray`): RGB frames, e.g. from `draw_frames`. Odd sizes are padded to even.
        path (`str` or `Path`): output file; parent folders are created.
        fps (`float`): frames per second.
        quality (`float`, defaults to 8.0): imageio-ffmpeg quality, 0 (worst) to 10 (best); line drawings
            need a high value to stay sharp.
        show_progress (`bool`, *optional*): tqdm progress bar; `None` turns it on above 250 frames.

    Returns:
        `Path` of the written file.
    """
    import imageio.v2 as iio2

    frames, fps = _even(_check_frames(frames)), _check_fps(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if show_progress is None:
        show_progress = len(frames) > AUTO_PROGRESS_FRAMES
    # macro_block_size=1: we made the size even ourselves; the default (16) would resize the frames.
    writer = iio2.get_writer(
        str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
        quality=quality, macro_block_size=1,
    )
    try:
        for frame in tqdm(frames, desc="writing mp4", unit="frame", disable=not show_progress):
            writer.append_data(frame)
    finally:
        writer.close()
    return path


def save_video(frames: np.ndarray, path: Union[str, Path], fps: float, show_progress: Optional[bool] = None) -> Path:
    """Write `frames` to `path`, choosing GIF or MP4 from the file extension.

    Raises:
        ValueError: the extension is not one of `.gif`, `.mp4`.
    """
    ext = Path(path).suffix.lower()
    if ext == ".gif":
        return save_gif(frames, path, fps)
    if ext == ".mp4":
        return save_mp4(frames, path, fps, show_progress=show_progress)
    raise ValueError(
        f"Unsupported video extension {ext or '(none)'!r} for {str(path)!r}; expected one of {VIDEO_EXTENSIONS}."
    )
