"""Probe of a Dask scheduler address before a ``Client`` is built (``--scheduler``).

distributed bounds the TCP connect but not the handshake read that follows it, so
a server that accepts and stays silent would hang ``Client`` for ever; the probe
completes one handshake under our own deadline first.
"""

from __future__ import annotations

__all__ = ["probe_scheduler"]


def probe_scheduler(address: str, seconds: float) -> None:
    """Connect to ``address`` and finish distributed's handshake within ``seconds``.

    Runs in a thread with its own event loop (the caller may be inside one);
    raises what the connection raised, or ``TimeoutError``.
    """
    import asyncio
    import threading

    from distributed.comm import connect

    async def probe() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        await comm.close()

    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(probe())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=target, name="hcl-scheduler-probe", daemon=True)
    thread.start()
    thread.join()  # wait_for ends the probe after ``seconds``
    if failure:
        raise failure[0]
