"""The throughput bench's parts (bench/throughput.py runs them; docs/benchmarks.md
says what each figure compares):

- common:    paths, names, process helpers (CPU, RSS, ports, settling)
- sandbox:   the imitation provider in its own process, with a round trip
             added to every request, and reading its task store
- reference: the plain asyncio + httpx script doing the app's work
- workers:   the app's processes as `manage.py serve` runs them (job
             workers, the web process), and its runs (a burst, one job)
- web:       the in-process web figures (poll CPU against the login page,
             polls per page)
- teams:     the team at 100,000 generations against one at 500 (poll,
             gallery pages, a no-match search)
- figures:   each measured run turned into figures, the targets, the report
"""
