"""An autouse fixture for the modules whose tests need real thread teams: parallel_team gives a
loaded machine's calls fewer threads or none (it reads /proc/loadavg), which would leave a test of
the 2- and 3-thread paths testing the 1-thread one on a busy CI machine. Import it into a test
module (``from tests._team_load import teams_whatever_the_load  # noqa: F401``) to switch the
reading off for the module."""

import pytest

from recforge import _core


@pytest.fixture(autouse=True, scope="module")
def teams_whatever_the_load():
    """parallel_team's load reading off for the module's tests, restored after them."""
    before = _core._team_load_check(False)
    yield
    _core._team_load_check(before)
