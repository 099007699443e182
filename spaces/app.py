"""The hf-sign Gradio Space: a sentence (or glosses) in, signing out, for every system of the registry that has a
model.

    python spaces/app.py [--model NAME=DIR_OR_REPO_ID ...] [--dataset DIR_OR_REPO_ID] [--port N]

The app itself is `hf_sign.space` (importable and tested); this file only starts it, the way a Hugging Face Space
runs `app.py`. See README.md beside it.
"""

import sys

from hf_sign.space import main

if __name__ == "__main__":
    sys.exit(main())
