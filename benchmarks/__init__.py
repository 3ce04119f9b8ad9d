"""flowexec's benchmark suite (issue 7): `python -m benchmarks --help`.

Each workload is a module of this package exposing `WORKLOAD = Workload(name, title, backends,
run)` (see `_common.py`); `run(ctx)` measures and returns markdown `Table`s with the targets it
reports. `__main__.WORKLOADS` lists the modules in the order they run; a listed module that does
not exist yet is skipped.

- `claim_one`: claim_execution + release_execution vs the reference's multi-statement claim
- `drain`: 20,000 executions drained by workers vs a raw-SQL claim/complete pipeline
- `sqlite_drain`: the same on SQLite (written with the SQLite backend)
- `latency`: create -> claimed on an idle worker (LISTEN/NOTIFY on Postgres, polling on SQLite)
- `listing`: root pages with levels/total_nested at 1,000,000 rows vs the reference's query
- `flat_cost`: claim_next with 10,000 vs 1,000,000 rows of history
- `recovery`: sweeping 10,000 executions whose worker died
- `dashboard`: every dashboard page over HTTP from `flowexec serve` at 1,000,000 executions
- `peers`: flowexec's Worker vs pgqueuer, procrastinate and oban (`--peers`; `.[bench]` extra)
"""
