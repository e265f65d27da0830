"""A contender for the lease, run as a child process by test_redis_lease_processes.py.

It stands by until it holds the lease, then appends an entry to the stream ``chat`` and
advances the checkpoint ``bridge`` every 20 ms through the fenced store, printing one line per
step. It tries every write whatever it believes about the lease, so that Redis, not its own
clock, is what refuses a former holder.
"""

from __future__ import annotations

import math
import sys
import threading

from signalwire_chat import Checkpoint, FencedWriteError, StoreUnavailableError
from signalwire_chat.redis import RedisCheckpointStore, RedisLease


def say(*words: object) -> None:
    print(*words, flush=True)


def main() -> None:
    url, name, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lease = RedisLease(url, name="bridge", ttl=ttl, owner=name)
    store = RedisCheckpointStore(url, lease=lease, timeout=1)
    pause = threading.Event()  # never set: a bounded wait between writes
    n = 0
    say("READY")
    while True:
        token = lease.acquire(timeout=math.inf)
        say("ACQUIRED", token)
        while True:
            n += 1
            checkpoint = Checkpoint(route="inbox", message_id=f"{name}-{n}", ts=float(n))
            fields = {"writer": name, "n": str(n), "token": str(token)}
            try:
                entry = store.save_and_append("bridge", checkpoint, stream="chat", fields=fields)
            except FencedWriteError:
                say("REFUSED", n)
                break
            except StoreUnavailableError:
                say("UNAVAILABLE", n)
            else:
                say("WROTE", n, entry)
            pause.wait(0.02)


if __name__ == "__main__":
    main()
