"""The job pipeline: queued -> submitting -> running -> succeeded / failed.

Rules (RELIABILITY 1-3):
- the status moves to "submitting" and is committed before the provider is
  called; the provider's job id is committed before the first poll;
- a job found in "submitting" after its lease ran out may have reached the
  provider: it is not sent again, it fails with that explanation;
- every state change is a conditional update: two workers, or a poll and a
  callback, cannot both finish a job;
- the job's row is its place in the queue (due_at); a worker never sleeps
  waiting for a provider: a step ends by setting the next due time;
- a worker holds its jobs with a short lease that one heartbeat renews while
  their steps run: the jobs of a worker that dies are due again once their
  leases run out, within about a minute, with no sweep;
- a callback is a hint: at most one status check per poll interval, and a
  job whose submit answer was lost adopts the job id a callback names only
  after one status call confirms it.

Modules, each importing only those above it (no circle):
- create: a new job (due at once);
- timing: when to poll next, how long the provider took, retry backoff;
- queue: which jobs are due, the claim, the renewal of leases;
- lease: the worker's heartbeat;
- results: the end of a job (images checked and stored, charge, failure),
  retries and the next poll;
- calls: the provider calls of a step, submit and poll;
- callbacks: a callback's nudge and the adoption of a claimed job id;
- steps: the step a claimed job is due for;
- worker: `manage.py run_jobs`, steps in flight on a thread pool.
"""
