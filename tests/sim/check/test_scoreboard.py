"""sim/check/scoreboard.py: the in-order Scoreboard, check_codes and the one Mismatch record."""
import pytest

from sim.check.scoreboard import Mismatch


def test_scoreboard_reports_first_mismatch():
    from sim.check.scoreboard import Scoreboard, check_codes
    sb = Scoreboard("demo")
    sb.expect_many([1, 2, 3, 4], inputs=["a", "b", "c", "d"])
    sb.actual_many([1, 5, 3, 6])
    assert sb.mismatches == 2 and sb.matched == 2
    with pytest.raises(AssertionError, match=r"first mismatch at item 1: expected 2, got 5 \(inputs 'b'\)"):
        sb.check()
    import numpy as np
    check_codes("ok", np.arange(6).reshape(3, 2), np.arange(6).reshape(3, 2))
    with pytest.raises(AssertionError, match=r"1 of 3 items mismatch; first at index 2: expected \[4, 5\], got \[4, 7\]"):
        check_codes("codes", np.arange(6).reshape(3, 2), np.array([[0, 1], [2, 3], [4, 7]]))


def test_a_trainer_mismatch_says_what_and_where():
    m = Mismatch(7, None, 3, 5, what="param", layer=1, position=(2, 0))
    assert m.sample == 7
    assert str(m) == "first mismatch at sample 7: param layer 1 index (2, 0): expected 3, actual 5"
    assert str(Mismatch(9, None, 10, 11, what="signature")) == "first mismatch at sample 9: signature: expected 10, actual 11"
