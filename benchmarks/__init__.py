"""`make bench`: measure the generated service against a bare shared httpx client, side by side.

Run ``python -m benchmarks`` from the template root (``--quick`` for a seconds-long smoke run).
Each module has one job: ``plan`` (what runs), ``machine`` (facts and CPU pinning), ``bake``
(the services under test), ``downstream`` and ``bare_app`` (servers), ``targets`` (starting
them), ``loadgen`` (the load driver, its own process), ``load`` (alternated runs), ``micro``
(in-process costs), ``memory`` (RSS growth), ``profiling`` (py-spy on a missed target),
``verdicts`` (the targets), ``report`` (latest.md / latest.json).
"""
