import csv

import pytest

from mdesign.optimization.store import CSV_COLUMNS, EvaluationStore


def test_pending_then_complete_is_durable_and_mirrored(tmp_path):
    db = tmp_path / "evaluations.sqlite"
    with EvaluationStore(db) as store:
        ids = store.add_pending("bo", 0, [{"latent": [0.1, -0.2]}, {"latent": [0.3, 0.4]}])
        assert store.count("bo", done=False) == 2 and store.count("bo", done=True) == 0
        store.complete(ids[0], outcomes=[1.5, 0.3], error=None, seconds=0.25)
        store.complete(ids[1], outcomes=None, error="boom", seconds=0.1)
        with pytest.raises(KeyError):
            store.complete(ids[0], outcomes=[2.0, 0.3], error=None, seconds=0.1)
    # reopened: what was completed is there
    with EvaluationStore(db) as store:
        recs = store.records("bo")
        assert [r.status for r in recs] == ["ok", "failed"]
        assert recs[0].outcomes == [1.5, 0.3] and recs[1].error == "boom"
        assert store.next_batch("bo") == 1 and store.next_batch("random") == 0
    rows = list(csv.DictReader((tmp_path / "evaluations.csv").open()))
    assert tuple(rows[0])[:8] == (
        "id",
        "method",
        "batch",
        "latent",
        "value",
        "status",
        "error",
        "seconds",
    )
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["value"] == "1.5" and rows[0]["latent"] == "[0.1, -0.2]"
    assert rows[1]["value"] == "" and rows[1]["status"] == "failed" and rows[1]["error"] == "boom"


def test_csv_holds_only_completed_rows_and_feasibility(tmp_path):
    store = EvaluationStore(tmp_path / "e.sqlite", feasible=lambda r: r.outcomes[1] < 0.5)
    ids = store.add_pending("random", 0, [{"latent": [0.0]}] * 3)
    store.complete(ids[0], outcomes=[1.0, 0.7], error=None, seconds=0.1)
    store.complete(ids[2], outcomes=[2.0, 0.2], error=None, seconds=0.1)
    rows = list(csv.DictReader((tmp_path / "evaluations.csv").open()))
    assert [r["id"] for r in rows] == [str(ids[0]), str(ids[2])]
    assert [r["feasible"] for r in rows] == ["false", "true"]
    store.close()


def test_meta_round_trip(tmp_path):
    with EvaluationStore(tmp_path / "e.sqlite") as store:
        store.set_meta("identity", {"a": [1, 2]})
        store.set_meta("identity", {"a": [3]})
        assert store.get_meta("identity") == {"a": [3]}
        assert store.get_meta("missing") is None


def test_confirmations_are_durable_per_evaluator_and_failures_are_nan(tmp_path):
    db = tmp_path / "e.sqlite"
    with EvaluationStore(db) as store:
        ids = store.add_pending("grf", 0, [{"grf_seed": 1}, {"grf_seed": 2}])
        store.add_confirmation(ids[0], "A", value=0.5, error=None, seconds=2.0)
        store.add_confirmation(ids[1], "A", value=None, error="boom", seconds=1.0)
        store.add_confirmation(ids[0], "B", value=0.25, error=None, seconds=3.0)
    with EvaluationStore(db) as store:
        a, b, c = (store.confirmations(k) for k in "ABC")
    assert c == {} and a[ids[0]] == (0.5, "", 2.0) and b == {ids[0]: (0.25, "", 3.0)}
    value, error, _ = a[ids[1]]
    assert value != value and error == "boom"  # NaN


def test_a_store_from_before_confirmations_gains_the_table(tmp_path):
    import sqlite3

    db = tmp_path / "e.sqlite"
    with EvaluationStore(db) as store:
        (i,) = store.add_pending("bo", 0, [{"latent": [0.0]}])
        store.complete(i, outcomes=[1.0], error=None, seconds=0.1)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE confirmations")
    con.commit()
    con.close()
    with EvaluationStore(db) as store:  # an older campaign resumed with a confirm stage
        assert store.confirmations("A") == {}
        store.add_confirmation(i, "A", value=2.0, error=None, seconds=1.0)
        assert store.records("bo")[0].outcomes == [1.0]
    with EvaluationStore(db) as store:
        assert store.confirmations("A")[i][0] == 2.0


def _filled_store(path):
    with EvaluationStore(path) as store:
        store.set_meta("identity", {"seed": 0})
        for batch in range(30):  # enough rows for several database pages
            ids = store.add_pending("bo", batch, [{"latent": [0.01 * i] * 16} for i in range(4)])
            for i in ids:
                store.complete(i, outcomes=[0.5], error=None, seconds=0.1)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "foreign"])
def test_a_damaged_store_is_refused_and_the_message_says_how_to_recover(tmp_path, damage):
    import random
    import sqlite3

    from mdesign.errors import InputError

    db = tmp_path / "evaluations.sqlite"
    _filled_store(db)
    data = db.read_bytes()
    if damage == "empty":
        db.write_bytes(b"")
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        db.write_bytes(random.Random(0).randbytes(len(data)))
    else:  # a sound SQLite file that is not an evaluation store
        db.unlink()
        with sqlite3.connect(db) as other:
            other.execute("CREATE TABLE notes (text TEXT)")
        other.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError) as err:
        EvaluationStore(db)
    msg = str(err.value)
    assert str(db) in msg and "evaluations.csv" in msg and "move evaluations.sqlite" in msg
    # refused, not repaired or restarted: the folder is as it was
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_store_is_created_whole_or_not_at_all(tmp_path, monkeypatch):
    import mdesign.optimization.store as store_module

    db = tmp_path / "evaluations.sqlite"
    monkeypatch.setattr(store_module, "_SCHEMA", "CREATE TABLE meta (key TEXT); NOT SQL;")
    with pytest.raises(Exception, match="syntax error"):
        EvaluationStore(db)
    assert list(tmp_path.iterdir()) == []  # no empty or half-made store left behind
    monkeypatch.undo()
    with EvaluationStore(db) as store:
        assert store.records() == [] and store.get_meta("identity") is None
    assert db.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
