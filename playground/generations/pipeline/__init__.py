"""The job pipeline: queued -> submitting -> running -> succeeded / failed.

Rules (RELIABILITY 1-3):
- the status moves to "submitting" and is committed before the provider is
  called; the provider's job id is committed before the first poll;
- a job found in "submitting" after its lease ran out may have reached the
  provider: it is not sent again, it fails with that explanation;
- every state change is a conditional update: two workers, or a poll and a
  callback, cannot both finish a job;
- a worker never sleeps waiting for a provider: the next poll is a task with
  run_after; a recovery sweep re-enqueues jobs whose worker vanished;
- a worker holds its job with a short lease that a heartbeat renews while the
  step runs, so a worker that dies is replaced within about a minute;
- a callback is a hint: at most one status check per poll interval, and a
  job whose submit answer was lost adopts the job id a callback names only
  after one status call confirms it.

Modules, each importing only those above it (no circle):
- create: a new job, and the queueing of a job's next step (enqueue);
- timing: when to poll next, how long the provider took, retry backoff;
- lease: the short lease a worker holds on its job, and its heartbeat;
- results: the end of a job (images checked and stored, charge, failure),
  retries and the next poll;
- calls: the provider calls of a step, submit and poll;
- steps: the worker's entry point (advance), one job or a batch;
- callbacks: a callback's nudge and the adoption of a claimed job id;
- sweep: the recovery sweep.
"""
