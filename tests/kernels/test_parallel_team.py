"""recforge::parallel_team: the parallel_for steps of its body run on the team's threads, each task
once, on thread ids below the step's own limit; exceptions reach Python and the team lets its
threads go (via a private self-check)."""

import threading

import pytest

from recforge import _core
from tests._team_load import teams_whatever_the_load  # noqa: F401


def _expected(n_steps):
    """Sum over steps k of k * 16 + t for t < 1 + k % 9 (what every task writes)."""
    return sum(sum(k * 16 + t for t in range(1 + k % 9)) for k in range(n_steps))


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_every_task_of_every_step_runs_once(n_threads):
    n_steps = 20_000
    total, max_tid, bad_ids = _core._parallel_team_check(n_steps, n_threads)
    assert total == _expected(n_steps)
    assert bad_ids == 0
    assert max_tid < n_threads


@pytest.mark.parametrize("n_threads", [2, 3])
def test_exception_in_a_step_reaches_python(n_threads):
    with pytest.raises(ValueError, match="step 777 failed"):
        _core._parallel_team_check(2000, n_threads, fail_step=777)
    # the team's threads were released: the pool and a new team still work
    assert _core._parallel_for_check(1000, n_threads)[0] == 1000 * 999
    assert _core._parallel_team_check(500, n_threads)[0] == _expected(500)


@pytest.mark.parametrize(("n_tasks", "n_threads"), [(1, 2), (2, 2), (8, 2), (5, 3), (7, 1), (3, 4)])
def test_affine_steps_run_every_task_once_on_the_team(n_tasks, n_threads):
    # (the GBDT growers' row blocks: each thread takes the blocks it had at the last step first)
    n_steps = 3000
    runs, bad_ids, own = _core._parallel_for_affine_check(n_steps, n_tasks, n_threads)
    assert runs == [n_steps] * n_tasks
    assert bad_ids == 0
    assert 0 <= own <= n_steps * n_tasks
    if n_threads == 1:
        assert own == n_steps * n_tasks


def test_exception_in_an_affine_step_reaches_python():
    with pytest.raises(ValueError, match="step 77 failed"):
        _core._parallel_for_affine_check(200, 4, 2, fail_step=77)
    assert _core._parallel_for_affine_check(100, 4, 2)[0] == [100] * 4


def test_teams_and_plain_calls_from_concurrent_python_threads():
    results, errors = [], []

    def run(team):
        try:
            for _ in range(50):
                if team:
                    results.append(_core._parallel_team_check(300, 2)[0] == _expected(300))
                else:
                    results.append(_core._parallel_for_check(500, 2)[0] == 500 * 499)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [True] * 200


def test_crowded_calls_send_the_next_calls_solo_in_growing_windows_until_reset():
    _core.reset_team_health()
    assert _core._team_health() == (0, 1)
    # each crowded call: the current window's calls go solo, the next window is 4x (at most 256)
    assert _core._team_health(1) == (1, 4)
    assert _core._team_health(2) == (16, 64)
    assert _core._team_health(3) == (256, 256)
    _core.reset_team_health()
    assert _core._team_health() == (0, 1)


def test_a_gbdt_fit_starts_with_a_fresh_team_health():
    # a busy spell in an earlier fit (or any kernel) must not send this fit's first trees solo: the
    # fit resets the record before its first tree (on 300 rows no tree runs a team, so nothing is
    # recorded after the reset)
    import numpy as np

    from recforge.rank import GBDTClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    _core.reset_team_health()
    assert _core._team_health(4) == (64, 256)
    GBDTClassifier(n_estimators=2, max_depth=2, n_threads=2).fit(X, y)
    assert _core._team_health() == (0, 1)
    _core._team_health(4)
    GBDTClassifier(n_estimators=2, max_depth=None, max_leaves=4, n_threads=2).fit(X, y)
    assert _core._team_health() == (0, 1)


def test_a_team_gets_the_cores_the_machine_leaves_free():
    # /proc/loadavg's fourth field counts the runnable threads, the reading one included
    assert _core._team_size_for_load("0.52 0.40 0.31 1/210 9876\n", 2, 2) == (1, 2)
    # one foreign thread spinning on 2 cores: the team would want 3, it runs solo (size 1)
    assert _core._team_size_for_load("1.02 0.40 0.31 2/210 9876\n", 2, 2) == (2, 1)
    assert _core._team_size_for_load("1.02 0.40 0.31 2/210 9876\n", 2, 4) == (2, 2)
    assert _core._team_size_for_load("3.9 3.1 2.0 12/512 1\n", 4, 16) == (12, 4)
    # 13 others runnable on 16 cores: a team of 3 on the free ones, not of 4
    assert _core._team_size_for_load("3.9 3.1 2.0 14/512 1\n", 4, 16) == (14, 3)
    assert _core._team_size_for_load("9.9 3.1 2.0 40/512 1\n", 4, 16) == (40, 1)
    for bad in ("", "0.1 0.2 0.3", "0.1 0.2 0.3 x/5 1", "0.1 0.2 0.3 7 1"):
        assert _core._team_size_for_load(bad, 2, 2) == (-1, 2)  # unreadable: the team runs


def test_a_call_solo_for_the_load_is_not_recorded_as_crowded():
    # another library's OpenMP threads spinning after its last region look like a busy machine for a
    # moment: those calls run solo, but must not send the calls after them solo (a fit right after
    # LightGBM's ran its whole 300 trees on one thread when they did)
    import os

    import numpy as np

    from recforge.rank import GBDTClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=len(X)) > 0).astype(int)
    before = _core._team_load_check(True)
    previous = _core._team_load_override(4 * (os.cpu_count() or 1) + 4)  # no core left free
    try:
        loaded = GBDTClassifier(n_estimators=4, max_depth=4, n_threads=2).fit(X, y)
        assert _core._team_health() == (0, 1)
    finally:
        _core._team_load_override(previous)
        _core._team_load_check(before)
    alone = GBDTClassifier(n_estimators=4, max_depth=4, n_threads=1).fit(X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), alone.predict_proba(X))


@pytest.mark.parametrize(
    ("n_groups", "group_size", "n_threads"),
    [(8, 1, 2), (8, 32, 2), (2, 16, 2), (3, 5, 3), (4, 7, 1), (1, 9, 2), (5, 0, 2)],
)
def test_affine_group_steps_run_every_task_once_in_their_order(n_groups, group_size, n_threads):
    # (the GBDT depth-wise grower's nodes of a row block: a thread runs its own blocks' nodes in
    # order, then takes the others' from their ends)
    n_steps = 500
    runs, bad_ids, own, out_of_order = _core._parallel_for_affine_groups_check(
        n_steps, n_groups, group_size, n_threads
    )
    assert runs == [n_steps] * (n_groups * group_size)
    assert bad_ids == 0
    assert out_of_order == 0
    assert 0 <= own <= n_steps * n_groups * group_size
    if min(n_threads, n_groups) == 1:
        assert own == n_steps * n_groups * group_size


def test_exception_in_an_affine_group_step_reaches_python():
    with pytest.raises(ValueError, match="step 41 failed"):
        _core._parallel_for_affine_groups_check(100, 4, 8, 2, fail_step=41)
    assert _core._parallel_for_affine_groups_check(50, 4, 8, 2)[0] == [50] * 32


def test_pool_workers_linger_after_a_team_call_and_then_sleep():
    import time

    seen = 0
    for _ in range(50):
        _core._parallel_team_check(20, 2)
        seen = max(seen, _core._lingering_workers())
    assert seen >= 1  # awake for the next call right after one
    time.sleep(0.2)  # (the linger lasts a millisecond)
    assert _core._lingering_workers() == 0
