"""Publishing hf-sign pipelines and corpora to the Hugging Face Hub (`hf-sign publish`).

* `hf_sign.hub.folders`: the repository folder (what is copied, what is left out, no pickles);
* `hf_sign.hub.results`: the card's `model-index` from the benchmark harness' `results.json`;
* `hf_sign.hub.cards`: model and dataset cards through huggingface_hub's `ModelCard` / `DatasetCard`, from the
  templates in `hf_sign/hub_cards/`;
* `hf_sign.hub.checks`: the offline checks of `--dry-run` (and of every upload);
* `hf_sign.hub.publishing`: the verb itself, `publish(folder, repo_id, ...)`.

Placing a folder in the local Hugging Face caches under a repo id (`hf-sign hub cache-add`) lives in
`hf_sign.pipelines.hub_cache`, which the demo uses too.
"""

from .publishing import DEFAULT_LICENSE, PublishResult, build_repo_folder, default_out_dir, publish

__all__ = ["DEFAULT_LICENSE", "PublishResult", "build_repo_folder", "default_out_dir", "publish"]
