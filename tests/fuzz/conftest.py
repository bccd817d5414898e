"""Fuzz tests: the Hypothesis profile, one crash-isolating worker, the count of inputs tried."""

import faulthandler

import pytest
from hypothesis import settings

from tests.fuzz import _harness

settings.load_profile("recforge-fuzz")


@pytest.fixture(scope="session")
def worker():
    w = _harness.Worker()
    yield w
    w.close()


@pytest.fixture(autouse=True)
def hang_guard():
    """A call stuck in compiled code cannot be interrupted: dump every stack and end the run."""
    faulthandler.dump_traceback_later(_harness.CALL_TIMEOUT_S * 5, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_terminal_summary(terminalreporter):
    tried = _harness.INPUTS_TRIED
    if any(tried.values()):
        detail = ", ".join(f"{n} {where}" for where, n in tried.items())
        terminalreporter.write_line(f"fuzz: {sum(tried.values())} inputs tried ({detail})")
