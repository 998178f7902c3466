"""Model loading: sha256-verified, and a checkpoint can never run code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from humclean import zoo
from humclean.errors import ModelError
from humclean.models.base import ModelCard
from humclean.models.tiny import TinyConvHum


class _Payload:
    def __reduce__(self):  # noqa: ANN204 - the classic pickle exploit shape
        return (os.system, ("touch PWNED",))


def test_pickled_code_in_weights_is_refused_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "evil"
    zoo.save(TinyConvHum(), ModelCard("evil", 16000, 4000, 500, arch="tiny-conv"), folder)
    torch.save({"state_dict": _Payload()}, folder / "weights.pt")
    card = json.loads((folder / "card.json").read_text())
    card["sha256"] = zoo.sha256_file(folder / "weights.pt")  # even a matching checksum must not help
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="cannot load model"):
        zoo.load(str(folder), "cpu")
    assert not (tmp_path / "PWNED").exists()


def test_card_cannot_point_outside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    zoo.save(TinyConvHum(), ModelCard("m", 16000, 4000, 500, arch="tiny-conv"), folder)
    card = json.loads((folder / "card.json").read_text())
    card["weights"] = "../../etc/passwd"
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="outside"):
        zoo.load(str(folder), "cpu")


def test_unknown_model_lists_what_exists() -> None:
    with pytest.raises(ModelError, match="available: dsp, notch"):
        zoo.load("no-such-model")
