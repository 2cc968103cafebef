"""``run_dashboard``, the CLI's entry: errors of the batch reach the caller unwrapped."""

from __future__ import annotations

import pytest

from gangflash.tui.app import run_dashboard, summary_exit_code
from gangflash.orchestrator.scheduler import BatchSummary
from gangflash.tui.scripted import ScriptedBatch, scripted_config


class BrokenBatch(ScriptedBatch):
    async def run(self):
        raise RuntimeError("no ST-Link probes found")


def test_run_dashboard_raises_what_the_batch_raised():
    with pytest.raises(RuntimeError, match="no ST-Link probes found"):
        run_dashboard(BrokenBatch(scripted_config(2)), headless=True)


@pytest.mark.parametrize("summary, code", [(BatchSummary(8, 0, 0), 0), (BatchSummary(7, 1, 0), 1),
                                           (BatchSummary(7, 0, 1), 1), (None, 1)])
def test_exit_code_is_0_only_when_every_board_passed(summary, code):
    assert summary_exit_code(summary) == code
