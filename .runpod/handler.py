"""RunPod Hub's entry point: the queue handler lives in app/runpod_handler.py.

The image runs it when SERVICE_MODE=runpod-queue (hub.json sets that), through its usual command
``python -m app``; this file runs the same thing for tools that look for a handler.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.__main__ import load_settings
from app.runpod_handler import main

if __name__ == "__main__":
    sys.exit(main(load_settings()))
