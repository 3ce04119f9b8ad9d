"""flowexec's Worker and the Python peers it is compared with, behind one small interface.

Each `<library>_peer` module defines the library's no-op job the way its documentation does
(it runs in the library's own worker process) and a `Library` that installs the schema,
enqueues from the harness and names the worker command. `harness` runs the four phases on
any of them; `benchmarks.peers` is the workload that reports them side by side.
"""
