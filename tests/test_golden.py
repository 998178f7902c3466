"""Golden-metric regression tests: each model reaches its recorded SI-SDR on the fixed golden set."""

from __future__ import annotations

import pytest
from humclean.training.golden import golden_si_sdr

from humclean import zoo

TOLERANCE_DB = 0.5
# Built-in methods carry no card; their golden figures are pinned here (measured with golden_si_sdr).
BUILTIN_GOLDEN = {"dsp": 28.06, "notch": 18.06}


@pytest.mark.parametrize("name", sorted(BUILTIN_GOLDEN))
def test_builtin_golden(name: str) -> None:
    assert golden_si_sdr(zoo.load(name, "cpu")) == pytest.approx(BUILTIN_GOLDEN[name], abs=TOLERANCE_DB)


@pytest.mark.parametrize("name", zoo.released())
def test_released_model_golden(name: str) -> None:
    card = zoo.describe(name)
    expected = card.get("metrics", {}).get("golden_si_sdr")
    assert expected is not None, f"{name}: card has no metrics.golden_si_sdr"
    assert golden_si_sdr(zoo.load(name, "cpu")) == pytest.approx(expected, abs=TOLERANCE_DB)


def test_every_released_model_verifies_and_default_resolves() -> None:
    for name in zoo.released():
        card = zoo.describe(name)
        assert card["sha256"] == zoo.sha256_file(zoo.zoo_dir() / name / card["weights"])
    assert zoo.aliases()["default"] in zoo.available()
