"""Where the project's shipped files are (rules/, schemas/, agents.yaml): the checkout root."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
