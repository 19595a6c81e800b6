"""``grantflow up``: the whole system on one machine, supervised by one process.

- ``options``: what runs and where (StackOptions, the ports and their checks);
- ``infrastructure``: the Tansu broker and the Temporal dev server (also for tests);
- ``processes``: process control (spawning, output, pid files, stopping);
- ``readiness``: waiting for ports, topics, Temporal, migrations and ``/readyz``;
- ``supervisor``: the start order, restarts and the stop (``run_stack``);
- ``banner``: the ready banner and its development tokens.
"""
