"""Pose sequences to pictures and files: stick-figure frames, avatar frames in appearance styles, GIF/MP4 and
pose-format `.pose` (MediaPipe Holistic layout) and BVH export."""

from .avatar import AVATAR_STYLES, AvatarStyle, draw_avatar_frames, draw_skeleton_frames, get_avatar_style, hand_boxes
from .bvh_export import bvh_text, save_bvh
from .frames import PART_COLORS, check_positions, draw_frames, project, render_panels
from .inputs import RenderInput, load_render_input, render_to_file, save_npz
from .pose_export import mediapipe_mapping, pose_to_positions, positions_to_pose, save_pose
from .video import save_gif, save_mp4, save_video

__all__ = [
    "AVATAR_STYLES",
    "AvatarStyle",
    "PART_COLORS",
    "RenderInput",
    "bvh_text",
    "check_positions",
    "draw_avatar_frames",
    "draw_frames",
    "draw_skeleton_frames",
    "get_avatar_style",
    "hand_boxes",
    "load_render_input",
    "mediapipe_mapping",
    "pose_to_positions",
    "positions_to_pose",
    "project",
    "render_panels",
    "render_to_file",
    "save_bvh",
    "save_gif",
    "save_mp4",
    "save_npz",
    "save_pose",
    "save_video",
]
