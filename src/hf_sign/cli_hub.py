"""`hf-sign publish` and `hf-sign hub ...`: the command-line verbs of the Hub (their parsers and handlers).

    hf-sign publish DIR --repo-id ORG/NAME [--dry-run] [--results FILE] ...
    hf-sign hub cache-add DIR --repo-id ORG/NAME [--repo-type model|dataset]

Heavy imports happen inside each handler so `hf-sign --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_hub_commands"]


def cmd_publish(args: argparse.Namespace) -> int:
    from .hub import publish

    try:
        result = publish(
            args.dir,
            args.repo_id,
            repo_type=args.repo_type,
            dry_run=args.dry_run,
            private=args.private,
            out=args.out,
            results=args.results,
            results_row=args.results_row,
            dataset_id=args.dataset_id,
            license=args.license,
        )
    except OSError as err:  # the Hub unreachable, offline mode, refused credentials: one line, never a traceback
        if isinstance(err, FileNotFoundError):
            raise
        print(f"hf-sign: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    return result.print_report(args.repo_id)


def cmd_hub(args: argparse.Namespace) -> int:
    from .pipelines.hub_cache import cache_folder_as_repo, detect_repo_type

    snapshot = cache_folder_as_repo(args.dir, args.repo_id, repo_type=args.repo_type)
    print(f"cached {args.dir} as {args.repo_id} ({snapshot})")
    if detect_repo_type(snapshot) == "model":
        print(f'load it offline: DiffusionPipeline.from_pretrained("{args.repo_id}", trust_remote_code=True)')
    else:
        print(f'load it offline: datasets.load_dataset("{args.repo_id}")')
    return 0


def add_hub_commands(sub) -> None:
    """Register `publish` and `hub` on the CLI's subparsers."""
    pub = sub.add_parser("publish", help="build, check and upload a pipeline or corpus folder as a Hub repository")
    pub.add_argument("dir", metavar="DIR", help="trained pipeline folder or corpus folder")
    pub.add_argument("--repo-id", required=True, help="target repository, ORG/NAME")
    pub.add_argument("--repo-type", choices=("model", "dataset"), default=None, help="default: what DIR holds")
    pub.add_argument("--dry-run", action="store_true", help="build and check offline; upload nothing")
    pub.add_argument("--private", action="store_true", help="create the repository as private")
    pub.add_argument("--results", default=None, help="benchmark results.json (or its folder) for the model-index")
    pub.add_argument("--results-row", default=None, help="the model's row in results.json (default: found)")
    pub.add_argument("--dataset-id", default=None, help="the training corpus' repo id (card `datasets`)")
    pub.add_argument("--license", default=None, help="Hub licence id (default: apache-2.0 / the corpus card's)")
    pub.add_argument("--out", default=None, help="where to build the repository (default: outputs/hub/ORG--NAME)")
    pub.set_defaults(func=cmd_publish)

    hub = sub.add_parser("hub", help="local Hugging Face cache")
    hsub = hub.add_subparsers(dest="what", required=True)
    cache_add = hsub.add_parser("cache-add", help="place a folder in the HF caches so it loads by repo id offline")
    cache_add.add_argument("dir", metavar="DIR", help="pipeline folder or corpus folder")
    cache_add.add_argument("--repo-id", required=True, help="repo id to load it by, ORG/NAME")
    cache_add.add_argument("--repo-type", choices=("model", "dataset"), default=None, help="default: what DIR holds")
    hub.set_defaults(func=cmd_hub)
