"""Hub entry file of `MaDiSPipeline` (MaDiS text -> part-wise sign tokens -> 3D signing poses), copied into saved
pipeline folders.

`model_index.json` names it (`"_class_name": ["pipeline_madis", "MaDiSPipeline"]`), so

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained("path/or/repo-id", trust_remote_code=True)

loads the pipeline without importing hf-sign by hand. The file is thin on purpose: the code lives in the hf-sign
package (`pip install hf-sign`), which must be installed where the pipeline is loaded.
"""

from diffusers import DiffusionPipeline  # noqa: F401

from hf_sign.pipelines.pipeline_madis import MaDiSPipeline, MaDiSPipelineOutput  # noqa: F401
