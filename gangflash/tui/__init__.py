"""The live dashboard of a batch (``gangflash run`` on a terminal): one tile per board.

Pieces: ``model`` (state built from the batch's events alone, plain Python), ``app`` (the Textual
app: one worker drains the event stream, a 50 ms timer redraws what changed; ``run_dashboard``),
``tile`` and ``grid`` (the board tiles, reflowed to the terminal), ``header``, ``detail`` (the
selected board in full), ``log`` (the batch log, filterable to failures), ``confirm`` (the quit
question), ``units`` (how numbers are written), ``scripted`` (a batch look-alike playing scripted
events, for tests, screenshots and ``benchmarks/tui_cpu.py``); styles in ``dashboard.tcss``.
This package imports only ``gangflash.orchestrator``.
"""
