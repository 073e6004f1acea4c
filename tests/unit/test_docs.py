"""The configuration reference documents every setting there is."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from scaler.config import Settings

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    found: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(_paths(annotation, f"{prefix}{name}."))
        else:
            found.append(f"{prefix}{name}")
    return found


def test_configuration_doc_lists_every_setting() -> None:
    """Each settings field appears in docs/configuration.md as `dotted.path`."""
    text = DOC.read_text()
    missing = [path for path in _paths(Settings) if f"`{path}`" not in text]
    assert missing == []
