"""bench/targets.py's reading of pytest-benchmark results into issue 13's rows (no benchmark runs)."""

import pytest

from bench import bench_busy, targets


def entry(group, name, median):
    return {"group": group, "name": name, "stats": {"median": median}}


def test_a_row_is_the_peer_median_over_ours_against_its_target():
    rows = targets.SECTIONS["lr"][2]
    ctr_2t, ctr_1t = rows[0], rows[1]
    benchmarks = [
        entry(ctr_2t.group, ctr_2t.ours, 0.10),
        entry(ctr_1t.group, ctr_1t.ours, 0.40),
        entry(ctr_2t.group, ctr_2t.peer, 0.45),
        entry("other-group", ctr_2t.ours, 0.01),  # the same name in another group: not read
    ]
    results = targets.section_results("lr", benchmarks)
    assert [r.what for r in results] == [row.what for row in rows]
    assert results[0].ratio == pytest.approx(4.5) and results[0].held  # target 2.0
    assert results[1].ratio == pytest.approx(1.125) and not results[1].held  # target 1.2
    # the Adult and 1M x 50 entries are missing: no ratio, not held
    assert all(r.ratio is None and not r.held for r in results[2:])
    report = targets.format_results(results)
    assert "1 of 4 rows held" in report
    assert report.count("missing") == 4  # ours and peer of the two missing rows


def test_the_busy_group_gives_one_row_per_case_idle_over_busy():
    benchmarks = [
        entry("busy-gbdt", f"test_busy[gbdt-{bench_busy.IDLE}]", 0.18),
        entry("busy-gbdt", f"test_busy[gbdt-{bench_busy.BUSY}]", 0.20),
        entry("busy-lr", f"test_busy[lr-{bench_busy.IDLE}]", 0.12),
        entry("busy-lr", f"test_busy[lr-{bench_busy.BUSY}]", 0.10),
        entry("lr-fit-adult", "test_sklearn_lbfgs_adult", 0.14),
    ]
    results = targets.section_results("busy", benchmarks)
    assert [r.what.split(":")[1].split()[0] for r in results] == ["gbdt", "lr"]
    assert results[0].ratio == pytest.approx(0.9) and not results[0].held
    assert results[1].ratio == pytest.approx(1.2) and results[1].held
    assert all(r.target == 1.0 for r in results)


def test_every_row_names_a_section_file_that_exists_and_a_target():
    for name, (filename, _, rows) in targets.SECTIONS.items():
        assert (targets.BENCH_DIR / filename).is_file(), name
        for row in rows:
            assert row.group and row.ours != row.peer and row.target >= 1.0


def test_unknown_sections_are_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        targets.main(["gbdt", "nonsense"])
    assert "nonsense" in capsys.readouterr().err
