"""The memory budget: from /proc/meminfo or MDESIGN_MEMORY_LIMIT, refused before allocating."""

import pytest

from mdesign.errors import InputError
from mdesign.memory import ENV_LIMIT, available_memory, check_memory, format_bytes, memory_budget


def test_budget_is_half_the_available_memory(monkeypatch):
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    avail = available_memory()
    assert avail is not None and avail > 0
    # available memory moves between the two reads; half of it within 1 %
    assert memory_budget() == pytest.approx(avail / 2, rel=0.01)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1000", 1000), ("2K", 2048), ("1.5M", 1.5 * 2**20), ("8G", 8 * 2**30), ("3gib", 3 * 2**30)],
)
def test_environment_limit_units(monkeypatch, text, expected):
    monkeypatch.setenv(ENV_LIMIT, text)
    assert memory_budget() == int(expected)


@pytest.mark.parametrize("text", ["lots", "-1G", "1X", "G"])
def test_bad_environment_limit_is_an_input_error(monkeypatch, text):
    monkeypatch.setenv(ENV_LIMIT, text)
    with pytest.raises(InputError, match=ENV_LIMIT):
        memory_budget()


def test_check_memory_refuses_above_the_budget_only(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, "1M")
    check_memory(2**20, what="exactly the budget")
    with pytest.raises(InputError, match=r"^shape: 2 images needs about 1\.0 MB") as info:
        check_memory(2**20 + 1, what="2 images", param="shape")
    assert info.value.param == "shape"


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KB"
    assert format_bytes(7.9 * 2**30) == "7.9 GB"
