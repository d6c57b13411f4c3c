"""``stream_put`` / ``stream_get`` for ``amaranth.sim`` testbenches (async style only).

API (stable)
------------
``await stream_put(ctx, stream, payload, *, stall=None)``
    Present ``payload`` on ``stream`` (an ``In(stream.Signature)`` port of the design
    seen from outside, or any stream interface whose valid/payload the testbench drives)
    and wait until it is accepted. ``payload`` may be anything ``ctx.set`` takes for the
    payload shape: an int, a dict / list for struct / array layouts, a ``data.Const``.
    Returns after the clock edge that transferred it (valid is dropped again).
``await stream_get(ctx, stream, *, stall=None)``
    Raise ready on ``stream`` (an ``Out(stream.Signature)`` port), wait for a beat and
    return its payload as ``ctx.get`` gives it (a ``data.Const`` for layouts: index it
    with ``["field"]`` / ``[i]``, or ``.as_value()``); ready is dropped again afterwards.
``stall``: None (no idle cycles) or a callable returning True while the testbench should
    wait one more cycle before offering the beat / raising ready, e.g. ``random_stall(rng,
    0.3)``; stalls are inserted before each beat, never while a beat is pending.
``random_stall(rng, p)``: a stall callable from a ``numpy.random.Generator`` or
    ``random.Random`` (True with probability ``p``).
``put_all(ctx, stream, payloads, stall=None)`` / ``get_n(ctx, stream, n, stall=None)``:
    loops over the two above (``get_n`` returns a list).

Use one testbench for the producer and another for the consumer
(``sim.add_testbench(producer)``, ``sim.add_testbench(consumer)``) so they run
concurrently, as in Amaranth's own stream examples::

    async def producer(ctx):
        for p in payloads:
            await stream_put(ctx, dut.i, p, stall=random_stall(rng, 0.3))

    async def consumer(ctx):
        for _ in payloads:
            got.append(await stream_get(ctx, dut.o, stall=random_stall(rng, 0.3)))

Timing: ``ctx.tick().sample(...)`` samples the handshake at the edge itself, so a beat is
counted exactly when the design takes it, whatever the testbench order.
"""
from __future__ import annotations

__all__ = ["stream_put", "stream_get", "put_all", "get_n", "random_stall"]


def random_stall(rng, p: float):
    """A stall callable: True with probability ``p`` (``rng``: numpy Generator or random.Random)."""
    if not 0 <= p < 1:
        raise ValueError(f"stall probability must be in [0, 1), got {p!r}")
    draw = rng.random
    return lambda: draw() < p


async def stream_put(ctx, stream, payload, *, stall=None) -> None:
    if stall is not None:
        while stall():
            await ctx.tick()
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    while True:
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            break
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, stall=None):
    if stall is not None:
        while stall():
            await ctx.tick()
    ctx.set(stream.ready, 1)
    while True:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            break
    ctx.set(stream.ready, 0)
    return payload


async def put_all(ctx, stream, payloads, *, stall=None) -> None:
    for p in payloads:
        await stream_put(ctx, stream, p, stall=stall)


async def get_n(ctx, stream, n: int, *, stall=None) -> list:
    return [await stream_get(ctx, stream, stall=stall) for _ in range(n)]
