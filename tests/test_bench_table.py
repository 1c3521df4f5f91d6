"""The bench's table machinery: median-of-N cells, verdicts, soak windows, busy processes.

Pure functions on made-up rows and runs (no network, no WebRTC).
"""

from __future__ import annotations

import math

import pytest

from bench.busy import busy_processes, exited
from bench.client import Arrival
from bench.repeat import combine, combine_cell, spread
from bench.runs import StreamRun
from bench.soak import leak_mb, memory_growth_mb, soak_rows, window_table, windows
from bench.table import Row, render

S1 = "1 passthrough 720p30"


def p50_row(ours: float | str, naive: float | str = 48.0) -> Row:
    return Row(S1, "round trip p50 (ms)", "<= 25", ours, naive, limit=("<=", 25))


def test_row_judges_itself_with_its_limit() -> None:
    assert p50_row(14.6).ok is True
    assert p50_row(25.1).ok is False
    assert p50_row(float("nan")).ok is None  # no figure: no verdict
    assert Row(S1, "fps out", ">= 29", 30, limit=(">=", 29)).ok is True  # ints too


def test_spread_is_median_min_max() -> None:
    assert spread([15.1, 14.2, 16.0]) == "15.1 (14.2-16.0)"
    assert spread([101.0, 99.0, 150.0]) == "101 (99.0-150)"
    assert spread([-40.3, 0.1, 0.2]) == "0.1 (-40.3 to 0.2)"
    assert spread([float("nan"), 2.0, 4.0]) == "3.0 (2.0-4.0)"  # NaN is no measurement
    assert spread([float("nan")]) == "n/a"


def test_combine_cell_numbers_pairs_and_text() -> None:
    assert combine_cell([1.0, 2.0, 3.0]) == "2.0 (1.0-3.0)"
    assert combine_cell(["-", "-", "-"]) == "-"
    assert (
        combine_cell(["69.5 / 84.3", "70.1 / 80.0", "71.0 / 90.2"]) == "70.1 (69.5-71.0) / 84.3 (80.0-90.2)"
    )
    assert combine_cell(["29.4 / None", "29.0 / 19.8"]) == "29.2 (29.0-29.4) / 19.8 (19.8-19.8)"
    assert combine_cell(["715 / 93", "700 / 90"]) == "708 (700-715) / 91.5 (90.0-93.0)"
    assert combine_cell(["not run: x", "not run: y", "not run: x"]) == "not run: x; not run: y"
    assert combine_cell([]) == "-"


def test_combine_judges_the_median_not_each_run() -> None:
    runs = [[p50_row(14.0)], [p50_row(30.0)], [p50_row(16.0)]]  # one run misses the target
    (row,) = combine(runs)
    assert row.cells() == [
        S1,
        "round trip p50 (ms)",
        "<= 25",
        "16.0 (14.0-30.0)",
        "48.0 (48.0-48.0)",
        "0.33",
        "yes",
    ]
    (bad,) = combine([[p50_row(26.0)], [p50_row(30.0)], [p50_row(16.0)]])
    assert bad.verdict == "NO"


def test_combine_relative_limit_uses_median_of_the_limits() -> None:
    def last_third(first: float, last: float) -> Row:
        return Row("2", "p95 last third (ms)", "<= first + 30", last, limit=("<=", first + 30))

    # medians: first 100, last 125 -> 125 <= 130
    (row,) = combine([[last_third(100, 120)], [last_third(90, 125)], [last_third(110, 200)]])
    assert row.verdict == "yes"
    assert row.ours == "125 (120-200)"


def test_combine_keeps_order_and_marks_missing_rows() -> None:
    fps = Row(S1, "fps out", ">= 29", 30.0, 30.0, limit=(">=", 29))
    runs = [[p50_row(15.0), fps], [p50_row(16.0)]]
    table = combine(runs)
    assert [r.figure for r in table] == ["round trip p50 (ms)", "fps out"]
    assert table[1].ours == "30.0 (30.0-30.0) [1 of 2 runs]"
    assert table[1].ratio == "1.00"


def test_combine_without_limit_counts_the_runs_that_failed() -> None:
    def style(ok: bool) -> Row:
        return Row("3", "slowest", "<= 10", "not run: x", ok=ok)

    assert combine([[style(True)], [style(True)]])[0].verdict == "yes"
    assert combine([[style(True)], [style(False)]])[0].verdict == "NO in 1 of 2"
    assert combine([[Row("3", "f", "-", 1.0)], [Row("3", "f", "-", 2.0)]])[0].verdict == "-"


def test_targets_that_differ_between_runs_are_all_shown() -> None:
    rows = [[Row("5", "worst", f"<= {b}", 30.0, limit=("<=", b))] for b in (67, 68, 67)]
    (row,) = combine(rows)
    assert row.target == "<= 67; <= 68"
    assert row.verdict == "yes"


def test_render_takes_combined_rows() -> None:
    text = render(combine([[p50_row(15.0)], [p50_row(17.0)]]))
    assert "| 16.0 (15.0-17.0) |" in text
    assert text.splitlines()[1].startswith("|---")


def fake_run(minutes: float, latency_ms: float, late_latency_ms: float, rss_mb: list[float]) -> StreamRun:
    """30 fps for `minutes`, latency stepping up in the last sixth, one RSS sample per 5 s."""
    t_a, seconds = 1000.0, minutes * 60
    sent = {n: t_a + n / 30 for n in range(int(seconds * 30))}
    arrivals = [
        Arrival(t + 0.015, n, latency_ms if t - t_a < seconds * 5 / 6 else late_latency_ms)
        for n, t in sent.items()
        if n % 100 != 7  # one frame in 100 never comes back
    ]
    usage = [{"wall": t_a + 5 * i, "cpu": 0.2 * 5 * i, "rss": mb * 2**20} for i, mb in enumerate(rss_mb)]
    stats = {"frames_dropped": 10}
    return StreamRun(0.1, arrivals, sent, t_a, t_a + seconds, usage, stats, {"frames_dropped": 4}, 0)


def test_soak_windows_cut_the_run_in_sixths() -> None:
    rss = [150.0 + (40 if i == 2 else 0) for i in range(25)]  # 2 min: samples at 0..120 s
    run = fake_run(2, 15.0, 30.0, rss)
    ws = windows(run)
    assert len(ws) == 6
    assert [round(w.end_s) for w in ws] == [20, 40, 60, 80, 100, 120]
    assert all(w.p95 == 15.0 for w in ws[:5]) and ws[5].p95 == 30.0
    assert all(w.fps_out == pytest.approx(29.7, abs=0.1) for w in ws)
    assert all(w.cpu_cores == pytest.approx(0.2) for w in ws)
    assert ws[0].rss_peak_mb == 190.0  # the warm-up peak
    assert memory_growth_mb(ws) == -40.0
    assert leak_mb(ws) == -40.0  # windows 5-6 against windows 1-2
    assert sum(w.dropped for w in ws) == run.dropped
    assert "| 1      | 0.0-0.3 |" in window_table(ws)


def test_a_step_in_the_first_third_is_not_a_leak_but_steady_growth_is() -> None:
    step = [150.0 if i < 6 else 183.0 for i in range(25)]  # +33 MB in window 2, then flat
    ws = windows(fake_run(2, 15.0, 15.0, step))
    assert memory_growth_mb(ws) == 33.0 and leak_mb(ws) == 0.0
    steady = [150.0 + 2.0 * i for i in range(25)]  # 2 MB every sample: a leak
    assert leak_mb(windows(fake_run(2, 15.0, 15.0, steady))) >= 20


def verdicts(run: StreamRun) -> dict[str, Row]:
    return {r.figure: r for r in soak_rows(run, windows(run), 2)}


def test_soak_verdicts() -> None:
    rising = [100.0 + 2 * i for i in range(25)]  # +2 MB every 5 s: 48 MB over the run
    rows = verdicts(fake_run(2, 15.0, 30.0, rising))
    assert rows["round trip p95, last window (ms)"].ok is False  # 30 > 15 + 10
    assert rows["memory growth, last third vs first third (MB)"].ours == 34.0  # 148 - 114
    assert rows["memory growth, last third vs first third (MB)"].ok is False
    assert rows["memory growth after the first window (MB)"].ours == 42.0  # 148 - 106, shown only
    assert rows["fps out, slowest window"].ok is True
    assert rows["session.stats frames_dropped, same span"].ours == 6.0
    flat = verdicts(fake_run(2, 15.0, 20.0, [120.0] * 25))
    assert flat["round trip p95, last window (ms)"].ok is True
    assert flat["memory growth, last third vs first third (MB)"].ok is True
    assert all(r.naive == "-" for r in flat.values())  # the naive relay does not run in the soak
    assert not math.isnan(flat["kernel CPU, whole soak (cores)"].ours)  # type: ignore[arg-type]


def test_busy_processes_are_killed_even_on_an_exception() -> None:
    with pytest.raises(RuntimeError), busy_processes(2) as procs:
        assert len(procs) == 2 and exited(procs) == []
        raise RuntimeError("the bench failed")
    assert all(p.returncode is not None for p in procs)
    with busy_processes(0) as none:
        assert none == []


def fake_compare_runs(compare1_p50: float) -> dict[str, list[dict[str, object]]]:
    """Scenario 9's runs as bench/compare_cost.py records them: single 4 ms, two arms 7.7 ms."""

    def run(p50: dict[str, float], cpu_s: float, frames: int) -> dict[str, object]:
        arms = {
            a: {"latency_ms_p50": v, "latency_ms_p95": v + 1, "model_ms_p50": v - 1} for a, v in p50.items()
        }
        return {"cpu_s": cpu_s, "frames_out": frames, "arms": arms}

    setups = {
        "single": run({"anime": 4.0}, 1.0, 240),
        "separate": run({"anime": 4.4, "film noir": 4.3}, 2.4, 480),
        "compare1": run({"anime": compare1_p50}, 1.0, 240),
        "compare": run({"anime": 7.7, "film noir": 7.6}, 2.2, 480),
    }
    runs: dict[str, list[dict[str, object]]] = {
        f"{kind}/{setup}": [r] * 3 for kind in ("pattern", "camera") for setup, r in setups.items()
    }
    # Pipeline only (pattern): a model that waits, alone 3.0 ms; arms 3.3 and 3.7 (limit 3.6).
    runs["pattern/wait1"] = [run({"anime": 3.0}, 0.3, 240)] * 3
    runs["pattern/wait2"] = [run({"anime": 3.3, "film noir": 3.7}, 0.6, 480)] * 3
    contention = {"alone": [4.0], "alone_process": [3.9], "together": [7.1, 6.2], "together_process": [6, 5]}
    runs["contention"] = [contention] * 3
    return runs


def test_compare_judges_the_fan_out_and_each_arm_against_a_single_session() -> None:
    from bench.compare_cost import rows_from

    rows = {(r.scenario, r.figure): r for r in rows_from(fake_compare_runs(compare1_p50=4.2))}
    pattern = "9 compare, 2 local arms, pattern"
    fan_out = rows[(pattern, "kernel latency p50 (ms), 1-arm compare (the fan-out's own cost)")]
    assert fan_out.ok is True and fan_out.target == "<= 4.8 (1.2 x single)"  # 4.2 <= 1.2 x 4.0
    assert rows[(pattern, "kernel latency p50 (ms), compare arm 'anime'")].ok is False  # 7.7 > 4.8
    assert rows[(pattern, "CPU ms / output frame, compare")].ok is True  # 4.58 < 5.0
    assert rows[(pattern, "model ms p50, compare arm 'film noir'")].ours == "6.60 (6.60-6.60)"
    alone = "9 compare, the local model alone (no pipeline)"
    assert rows[(alone, "ms from release to output, 1 thread at 30 fps")].ours == "4.00 (4.00-4.00)"
    together = rows[(alone, "ms from release to output, 2 threads released together (each)")]
    assert together.ours == "6.65 (6.20-7.10)"
    assert rows[(alone, "  of which in process(), 2 threads together (each)")].ours == "5.50 (5.00-6.00)"
    waiting = "9 compare, pipeline only (a model that waits 2.5 ms), pattern"
    assert rows[(waiting, "kernel latency p50 (ms), compare arm 'anime'")].ok is True  # 3.3 <= 3.6
    assert rows[(waiting, "kernel latency p50 (ms), compare arm 'film noir'")].ok is False  # 3.7
    assert ("9 compare, 2 local arms, camera", "kernel latency p50 (ms), 1 session") in rows
    assert not any(w == waiting and "camera" in f for w, f in rows)
    slow = {(r.scenario, r.figure): r for r in rows_from(fake_compare_runs(compare1_p50=5.0))}
    assert slow[(pattern, "kernel latency p50 (ms), 1-arm compare (the fan-out's own cost)")].ok is False


def test_each_arm_is_set_against_the_single_session_of_its_own_round() -> None:
    from bench.compare_cost import rows_from

    runs = fake_compare_runs(compare1_p50=4.2)

    def arm(p50: float) -> dict[str, float]:
        return {"latency_ms_p50": p50, "latency_ms_p95": p50 + 1, "model_ms_p50": p50 - 1}

    single, compared = [], []
    for p50, anime in zip((2.0, 4.0, 3.0), (2.4, 4.4, 3.9), strict=True):  # a machine that drifts
        single.append({"cpu_s": 1, "frames_out": 1, "arms": {"anime": arm(p50)}})
        compared.append({"cpu_s": 1, "frames_out": 1, "arms": {"anime": arm(anime), "film noir": arm(p50)}})
    runs["camera/single"], runs["camera/compare"] = single, compared
    rows = {(r.scenario, r.figure): r for r in rows_from(runs)}
    camera = "9 compare, 2 local arms, camera"
    paired = rows[(camera, "kernel latency p50, arm 'anime' / single, paired by round")]
    assert paired.ours == "1.20 (1.10-1.30)"  # 2.4/2.0, 4.4/4.0, 3.9/3.0
    assert (
        rows[(camera, "kernel latency p50, arm 'film noir' / single, paired by round")].ours
        == "1.00 (1.00-1.00)"
    )


def test_the_camera_shows_each_arms_round_trip_beside_a_single_sessions() -> None:
    from bench.compare_cost import rows_from

    runs = fake_compare_runs(compare1_p50=4.2)
    for setup, trips in (("single", (30.0, 28.0, 40.0)), ("compare", (33.0, 42.0, 40.0))):
        runs[f"camera/{setup}"] = [
            {**run, "round_trip_ms_p50": {"anime": t, "film noir": t - 1}}
            for run, t in zip(runs[f"camera/{setup}"], trips, strict=True)
        ]
    rows = {(r.scenario, r.figure): r for r in rows_from(runs)}
    camera = "9 compare, 2 local arms, camera"
    assert rows[(camera, "round trip p50 (ms), 1 session")].ours == "30.00 (28.00-40.00)"
    assert rows[(camera, "round trip p50 (ms), compare arm 'film noir'")].ours == "39.00 (32.00-41.00)"
    paired = rows[(camera, "round trip p50, arm 'anime' / single, paired by round")]
    assert paired.ours == "1.10 (1.00-1.50)" and paired.ok is None  # 33/30, 42/28, 40/40: shown
    assert not any(s.endswith("pattern") and f.startswith("round trip") for s, f in rows)


def test_a_round_trip_counts_only_the_frames_back_inside_the_window() -> None:
    from bench.compare_cost import _window_p50

    trips = {
        "anime": [(0.5, 900.0), (1.0, 30.0), (1.5, 32.0), (2.0, 40.0), (2.5, 900.0)],
        "none": [(9.0, 1.0)],
    }
    assert _window_p50(trips, 1.0, 2.0) == {"anime": 32.0}


@pytest.mark.webrtc
def test_the_page_stand_in_reads_every_arms_round_trip_from_its_stamp() -> None:
    from bench.compare_cost import run_one

    result = run_one("compare", "camera", 2.0)
    trips = result["round_trip_ms_p50"]
    assert set(trips) == {"anime", "film noir"}  # the sender gets no output of its own
    kernel = {arm: figures["latency_ms_p50"] for arm, figures in result["arms"].items()}
    # A round trip holds the arm's kernel latency, and the encodes and decodes around it.
    assert all(kernel[arm] < trips[arm] < 1000.0 for arm in trips), (kernel, trips)


def test_contention_gives_each_thread_its_medians() -> None:
    from bench.compare_cost import contention

    result = contention(0.2)  # 6 ticks: the shape only, no timing asserted
    assert [len(result[k]) for k in ("alone", "alone_process", "together", "together_process")] == [
        1,
        1,
        2,
        2,
    ]
    assert all(v > 0 for values in result.values() for v in values)
