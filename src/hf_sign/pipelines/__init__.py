"""Inference pipelines (one `DiffusionPipeline` per file)."""

from .pipeline_sign_mexd import SignMExDPipeline, SignMExDPipelineOutput
from .pipeline_sign_sald import SignSALDPipeline, SignSALDPipelineOutput

__all__ = ["SignMExDPipeline", "SignMExDPipelineOutput", "SignSALDPipeline", "SignSALDPipelineOutput"]
