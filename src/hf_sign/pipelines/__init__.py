"""Inference pipelines (one `DiffusionPipeline` per file)."""

from .pipeline_sign_sald import SignSALDPipeline, SignSALDPipelineOutput

__all__ = ["SignSALDPipeline", "SignSALDPipelineOutput"]
