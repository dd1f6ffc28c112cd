"""Outbound HTTP to URLs that come from outside (RELIABILITY 6).

addresses: what "public" means, which private host:ports are allowed, and
how an outside URL's host and port are read. guard: the guarded httpx
client, whose every connection is checked where it is made, and the checks
of a team's base URL. download: result image downloads with byte and time
caps. Keys in provider text are scrubbed by playground.lib.scrub.
"""
