"""Run folders: the identity file, and the refusal of a folder holding another run."""

from __future__ import annotations

import pytest

from mdesign.errors import InputError
from mdesign.runs import claim_run_folder, config_differences, refuse_other_run


def test_differences_are_the_dotted_keys_that_differ():
    a = {"config": {"sizes": [1, 2], "net": {"lr": 0.1, "wd": 0}}, "sha": "x"}
    b = {"config": {"sizes": [1, 3], "net": {"lr": 0.1}}, "sha": "x", "extra": 1}
    assert config_differences(a, b) == ["config.net.wd", "config.sizes", "extra"]
    assert config_differences(a, a) == []
    assert config_differences(1, 2) == ["(the whole identity)"]


def test_claim_writes_the_identity_then_accepts_it_and_refuses_another(tmp_path):
    folder = tmp_path / "a" / "run"
    identity = {"format": "f/1", "config": {"seeds": 2, "sizes": [4, 8]}}
    path = claim_run_folder(folder, identity, filename="run.json", what="a run", remedy="fix")
    before = path.read_bytes()
    assert claim_run_folder(folder, identity, filename="run.json", what="a run", remedy="x") == path
    other = {"format": "f/1", "config": {"seeds": 3, "sizes": [4, 8]}}
    with pytest.raises(InputError, match=r"holds a run of another configuration \(differs in: "):
        claim_run_folder(folder, other, filename="run.json", what="a run", remedy="fix")
    with pytest.raises(InputError, match=r"differs in: config.seeds\); use another"):
        claim_run_folder(folder, other, filename="run.json", what="a run", remedy="use another")
    assert path.read_bytes() == before  # the refused run wrote nothing


def test_an_unreadable_identity_or_a_file_is_refused(tmp_path):
    (tmp_path / "run.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(InputError, match="another configuration"):
        claim_run_folder(tmp_path, {"a": 1}, filename="run.json", what="a run", remedy="r")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        claim_run_folder(tmp_path / "file", {"a": 1}, filename="run.json", what="a", remedy="r")


def test_refuse_other_run_without_an_earlier_run_passes():
    refuse_other_run("d", previous=None, current={"a": 1}, what="a run", remedy="r")
    many = {f"k{i}": i for i in range(9)}
    with pytest.raises(InputError, match="k0, k1, k2, k3, k4, k5 and 3 more"):
        refuse_other_run("d", previous=many, current={}, what="a run", remedy="r")
