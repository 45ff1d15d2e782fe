"""`hyperfcn cache`: the decoded cache's entries listed, and cleared without touching one a
running run uses."""

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperfcn.cli import main, parse_duration
from hyperfcn.data import cache as cache_mod
from hyperfcn.data.cache_admin import clear, describe_entries, describe_removed, entries
from hyperfcn.data.prepare import prepare

DAY = 86400.0


def _corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (30, 40, 3), np.uint8)).save(
                root / c / f"{i}.png")
    return root


def _two_entries(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """Two entries (seeds 0 and 1 draw two splits), released as if their runs had ended."""
    data, root = _corpus(tmp_path / "photos"), tmp_path / "cache"
    made = []
    for seed in (0, 1):
        _, summary = prepare(data, [16], seed=seed, cache_dir=root)
        made.append(Path(summary.cache))
    return data, root, made


def test_entries_say_what_they_were_made_from_and_which_are_in_use(tmp_path):
    data, root, made = _two_entries(tmp_path)
    found = entries(root)
    assert sorted(e.path for e in found) == sorted(made)
    for e in found:
        assert e.data == str(data.resolve()) and e.images == 10 and e.sizes == (16,)
        assert e.bytes > 0 and e.in_use and time.time() - e.last_used < 60
    cache_mod.release(made[0])
    assert {e.path: e.in_use for e in entries(root)} == {made[0]: False, made[1]: True}
    text = describe_entries(entries(root), root)
    assert f"decoded cache {root}: 2 entries" in text and str(data.resolve()) in text
    assert text.count("[in use]") == 1 and "16 px" in text
    assert "validation 20% seed 0" in text and "validation 20% seed 1" in text


def test_clear_leaves_an_entry_in_use_and_a_later_run_decodes_again(tmp_path):
    data, root, made = _two_entries(tmp_path)
    cache_mod.release(made[0])
    removed, busy = clear(root)
    assert [e.path for e in removed] == [made[0]] and [e.path for e in busy] == [made[1]]
    assert not made[0].exists() and made[1].exists()
    assert describe_removed(removed, busy).startswith("removed 1 entry (")
    _, again = prepare(data, [16], seed=0, cache_dir=root)
    assert not again.cache_hit and Path(again.cache).exists()
    for d in made:
        cache_mod.release(d)


def test_clear_older_than_keeps_the_recently_used(tmp_path):
    _, root, made = _two_entries(tmp_path)
    for d in made:
        cache_mod.release(d)
    old = time.time() - 10 * DAY
    os.utime(made[0] / cache_mod.IN_USE, (old, old))
    removed, busy = clear(root, older_than_s=7 * DAY)
    assert [e.path for e in removed] == [made[0]] and busy == []
    assert made[1].exists()


def test_a_run_waiting_on_an_entry_being_cleared_builds_it_anew(tmp_path):
    entry, entered = tmp_path / "entry", threading.Event()
    entry.mkdir()
    (entry / "old").write_text("stale")

    def run():
        with cache_mod.locked(entry):
            (entry / "new").write_text("built")
            entered.set()

    with cache_mod.unused(entry) as free:
        assert free
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.2)
        assert not entered.is_set()  # clearing holds the entry's lock
        shutil.rmtree(entry)
    t.join(10)
    assert entered.is_set() and (entry / "new").exists() and not (entry / "old").exists()


def test_the_cache_command_lists_and_clears(tmp_path, capsys):
    _, root, made = _two_entries(tmp_path)
    for d in made:
        cache_mod.release(d)
    assert main(["cache", "--cache-dir", str(root)]) == 0
    assert "2 entries" in capsys.readouterr().out
    assert main(["cache", "--cache-dir", str(root), "--clear", "--older-than", "7d"]) == 0
    assert capsys.readouterr().out.startswith("removed 0 entries")
    assert main(["cache", "--cache-dir", str(root), "--clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 2 entries")
    assert main(["cache", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "0 entries" in capsys.readouterr().out
    assert main(["cache", "--older-than", "7d"]) == 2
    assert "give both" in capsys.readouterr().err


def test_durations_take_days():
    assert parse_duration("7d") == 7 * DAY and parse_duration("1d12h") == 1.5 * DAY
    with pytest.raises(Exception, match="not a duration"):
        parse_duration("7 weeks")
