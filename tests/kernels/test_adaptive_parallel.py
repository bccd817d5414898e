"""recforge::parallel_for_adaptive (the Hogwild trainers' loop over blocks: word2vec, LFM): every
task runs once on a thread id below n_threads, exceptions reach Python, and the tasks run on the
team when it does more work per second than the calling thread alone, on the caller alone when
the team's threads slow each other down (via a private self-check whose tasks burn CPU time,
optionally 5x as much after a task of the other thread, as when the rows a task writes were
written last on another core)."""

import os

import pytest

from recforge import _core


@pytest.mark.parametrize("contended", [False, True])
@pytest.mark.parametrize(("n_tasks", "n_threads"), [(1, 2), (3, 2), (500, 1), (500, 2), (700, 3)])
def test_every_task_runs_once_on_a_thread_id_below_n_threads(n_tasks, n_threads, contended):
    runs, bad_ids, solo, team, _ = _core._parallel_for_adaptive_check(
        n_tasks, n_threads, 50, contended
    )
    assert runs == [1] * n_tasks
    assert bad_ids == 0
    if n_threads > 1 and n_tasks > 1:
        assert solo + team == n_tasks  # (measured: every task counted in one of the two ways)


def test_exception_in_a_task_reaches_python_and_the_threads_are_released():
    with pytest.raises(ValueError, match="task 300 failed"):
        _core._parallel_for_adaptive_check(2000, 2, 20, False, fail_at=300)
    assert _core._parallel_for_adaptive_check(200, 2, 20, True)[0] == [1] * 200
    assert _core._parallel_for_check(1000, 2)[0] == 1000 * 999


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a team beats one thread on 2+ cores only")
def test_independent_tasks_run_on_the_team():
    # 2000 tasks of 100 us CPU each: the team probe, then the caller alone for one 40 ms probe,
    # then the team (two threads do twice the tasks per second)
    _, _, _, team, switches = _core._parallel_for_adaptive_check(2000, 2, 100, False)
    assert team >= 0.7 * 2000
    assert switches >= 2  # (it did measure the caller alone)


def test_tasks_that_slow_each_other_down_run_on_the_caller_alone():
    # a task after one of the other thread costs 5x: about every other task in a team, so two
    # threads do ~2/3 of the caller's tasks per second alone; after the two probes it runs alone
    _, _, solo, _, switches = _core._parallel_for_adaptive_check(2000, 2, 100, True)
    assert solo >= 0.6 * 2000
    assert switches >= 1


def test_switched_off_it_is_parallel_for():
    before = _core._adaptive_schedule(False)
    try:
        runs, bad_ids, solo, team, switches = _core._parallel_for_adaptive_check(500, 2, 50, True)
    finally:
        _core._adaptive_schedule(before)
    assert runs == [1] * 500 and bad_ids == 0
    assert (solo, team, switches) == (0, 0, 0)  # nothing measured
    assert before is True  # (on by default)
