"""The oversubscription guard's decision rule (csrc/cpu/parallel.cpp), driven with synthetic clocks through
_C._guard_judgement_trace: a fresh state each call, the live guard untouched. Times are in milliseconds here."""
from __future__ import annotations

import pytest

from fastnn import backend

_C = backend._C
MS = 1_000_000


def regions(spec, t0=2):
    """spec: (work_ms, waited_ms, gap_ms) per region -> (start, enter, done, end) in ns, back to back."""
    out, t = [], t0 * MS
    for work, waited, gap in spec:
        start = t
        enter = start + int(waited * MS)
        done = enter + int(work * MS)
        out.append((start, enter, done, done))
        t = done + int(gap * MS)
    return out


def trace(spec):
    return _C._guard_judgement_trace(regions(spec))


def test_clean_regions_never_back_off():
    assert all(until == 0 for slow, until in trace([(1, 0, 0.1)] * 500))


def test_one_slow_region_is_not_enough():
    """A VM's first region after an idle spell waits for the host to wake the vCPU: one slow region alone
    must not serialize anything."""
    out = trace([(0.1, 5, 1)] + [(0.1, 0, 0.1)] * 50)
    assert out[0][0] and all(until == 0 for _, until in out)


def test_slow_regions_persisting_20ms_back_off_for_25ms():
    out = trace([(0.1, 4, 0)] * 10)
    first_backoff = next(i for i, (_, until) in enumerate(out) if until)
    assert 4 <= first_backoff <= 6  # 20 ms of slow regions at ~4.1 ms each
    end = regions([(0.1, 4, 0)] * 10)[first_backoff][3]
    assert out[first_backoff][1] == end + 25 * MS


def test_a_slow_probe_backs_off_again_at_once_doubling_up_to_200ms():
    """After a back-off, the next judged region is a probe: slow means the core is still taken, so the guard backs
    off again without waiting another 20 ms, for twice as long, capped at 200 ms (it was 2 s)."""
    spec = [(0.1, 4, 0)] * 6 + [(0.1, 4, 0)] * 8
    out = trace(spec)
    untils = [(i, until) for i, (_, until) in enumerate(out) if until]
    first = untils[0][0]
    # Every region after the first back-off is a slow probe (the test does not model the inline regions between).
    assert [i for i, _ in untils] == list(range(first, len(spec)))
    ends = [r[3] for r in regions(spec)]
    periods = [(until - ends[i]) // MS for i, until in untils]
    assert periods[:5] == [25, 50, 100, 200, 200]
    assert max(periods) == 200


def test_a_clean_probe_returns_to_threads_at_once():
    spec = [(0.1, 4, 0)] * 6 + [(0.1, 0, 0.1)] + [(0.1, 5, 0)]
    out = trace(spec)
    assert any(until for _, until in out[:6])
    assert out[6] == (False, 0)  # the clean probe: threads again
    assert out[7] == (True, 0)  # a later single slow region starts a new 20 ms run, it does not back off


def test_back_off_length_resets_after_16_clean_regions():
    slow_run = [(0.1, 4, 0)] * 6
    spec = slow_run + [(0.1, 4, 0)] + [(0.1, 0, 0.1)] * 16 + slow_run
    out = trace(spec)
    ends = [r[3] for r in regions(spec)]
    periods = [((until - ends[i]) // MS, i) for i, (_, until) in enumerate(out) if until]
    before = [p for p, i in periods if i < 7]
    after = [p for p, i in periods if i >= 7 + 16]
    assert before == [25, 50, 100]  # persisted, then slow probes
    assert after[0] == 25  # after 16 clean regions the next contention starts over at 25 ms


def test_bad_regions_are_rejected():
    with pytest.raises(ValueError, match="start <= enter <= done <= end"):
        _C._guard_judgement_trace([(5, 4, 6, 7)])
