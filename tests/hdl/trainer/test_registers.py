"""ControlRegisters (hdl/trainer/registers.py) and ParameterBanks (hdl/trainer/params.py),
each alone in amaranth.sim, against docs/registers.md.

ControlRegisters: a host testbench on the csr bus and a bank model (the banks' words a
cycle after ``param_rd``, garbage otherwise): the register map, the write rules (LR
1..65535, BATCH 1..batch_size and only while idle, STATUS write-1-to-clear), the
counters, parameter writes and reads (sign-extended to 32 bits) of every bank, refused
accesses (busy, bank or word out of range), and the access times: 2 cycles for a
register, 3 for a parameter write, 6 for a parameter read.

ParameterBanks: at reset every bank holds golden.fixed_model.init_params at
Layout.param_location; then random update-engine writes, bus writes (which take a
memory's write port over) and reads (datapath or bus, a cycle later) against a model.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from golden.fixed_model import init_params
from hdl.csr import BANK_SHIFT, ID_VALUE, REG, param_address
from hdl.trainer.params import ParameterBanks
from hdl.trainer.registers import ControlRegisters

from .helpers import codes, config, garbage, input_shapes, new_schedule, run_schedule, simulate

CASES = ["l4-b1-ne", "l3-b2-sr", "l1-b1-sr", "deep-l9"]
MASK = 0xFFFFFFFF


async def access(ctx, csr, addr, wdata=None):
    """One bus access: (rdata, cycles from the request to ack, both included)."""
    ctx.set(csr.addr, addr)
    ctx.set(csr.we if wdata is not None else csr.re, 1)
    if wdata is not None:
        ctx.set(csr.wdata, wdata)
    cycles = 1
    while not ctx.get(csr.ack):
        await ctx.tick()
        cycles += 1
    rdata = ctx.get(csr.rdata)
    await ctx.tick()
    ctx.set(csr.we, 0)
    ctx.set(csr.re, 0)
    return rdata, cycles


def run_registers(name, script):
    """``await script(ctx, t)`` as the host of a ControlRegisters of config ``name``, idle,
    beside a model of the banks (each bank's bus word a cycle after ``param_rd``, garbage
    otherwise). ``t``: cfg, lay, dut, rng, ``words[bank, bus word]`` the banks' contents,
    ``param_wr`` the parameter writes seen (bias, bank, word in its memory, data)."""
    cfg, lay = config(name)
    dut = ControlRegisters(cfg, lay)
    rng = np.random.default_rng(7)
    t = SimpleNamespace(cfg=cfg, lay=lay, dut=dut, rng=rng, param_wr=[],
                        words=codes(rng, cfg.weight, (cfg.lanes, lay.bank_words)))

    async def banks(ctx):
        async for _, _, valid, word, bias_word, wr in ctx.tick().sample(
                dut.param_rd.valid, dut.param_rd.word, dut.param_rd.bias_word, dut.param_wr):
            for p in range(cfg.lanes):
                ok = valid and word < lay.wdepth
                ctx.set(dut.w_data[p], int(t.words[p, word]) if ok else garbage(rng, dut.w_data[p].shape()))
                ok = valid and bias_word < lay.ddepth
                ctx.set(dut.b_data[p], int(t.words[p, lay.wdepth + bias_word]) if ok else
                        garbage(rng, dut.b_data[p].shape()))
            if wr.valid:
                # the banks take the low weight.width bits (params.py), as a signed code
                WW = cfg.weight.width
                data = ((wr.data & ((1 << WW) - 1)) ^ (1 << (WW - 1))) - (1 << (WW - 1))
                t.param_wr.append((wr.bias, wr.bank, wr.bias_word if wr.bias else wr.word, data))

    async def host(ctx):
        ctx.set(dut.idle, 1)
        await ctx.tick()
        await script(ctx, t)

    simulate(dut, host, background=(banks,))


async def status(ctx, t):
    return (await access(ctx, t.dut.csr, REG["STATUS"]))[0]


@pytest.mark.parametrize("name", ["l3-b2-sr", "deep-l9"])
def test_register_map_and_write_rules(name):
    async def script(ctx, t):
        cfg, dut, csr = t.cfg, t.dut, t.dut.csr
        for reg, want in (("ID", ID_VALUE), ("CTRL", 0), ("LR", cfg.lr_code), ("BATCH", cfg.batch_size),
                          ("STATUS", 0), ("SAMPLES", 0), ("UPDATES", 0)):
            assert await access(ctx, csr, REG[reg]) == (want, 2), f"{reg} at reset, in 2 cycles"
        assert await access(ctx, csr, REG["CTRL"], 1) == (0, 2) and ctx.get(dut.mode_infer) == 1
        lr = int(t.rng.integers(1, 1 << 16))
        await access(ctx, csr, REG["LR"], lr)
        assert ctx.get(dut.lr) == lr and await status(ctx, t) == 0
        for bad in (0, 1 << 16):  # LR in 1..65535
            await access(ctx, csr, REG["LR"], bad)
            assert ctx.get(dut.lr) == lr and await status(ctx, t) == 4, f"LR = {bad} is refused (bus error)"
            await access(ctx, csr, REG["STATUS"], 4)  # write 1 to clear
        # BATCH in 1..batch_size, only while idle (as of the cycle before); batch_restart with it
        for value, idle, ok in ((cfg.batch_size, 1, True), (cfg.batch_size + 1, 1, False), (0, 1, False),
                                (1, 0, False), (1, 1, True)):
            ctx.set(dut.idle, idle)
            await ctx.tick()
            before = ctx.get(dut.batch)
            ctx.set(csr.addr, REG["BATCH"])
            ctx.set(csr.wdata, value)
            ctx.set(csr.we, 1)
            assert ctx.get(dut.batch_restart) == ok, f"BATCH = {value} (idle {idle}): batch_restart"
            await ctx.tick()
            ctx.set(csr.we, 0)
            await ctx.tick()
            ctx.set(dut.idle, 1)
            assert ctx.get(dut.batch) == (value if ok else before), f"BATCH = {value} (idle {idle})"
            await ctx.tick()
            assert await status(ctx, t) == (0 if ok else 4), f"BATCH = {value} (idle {idle}): bus error"
            await access(ctx, csr, REG["STATUS"], 4)

    run_registers(name, script)


@pytest.mark.parametrize("name", ["l4-b1-ne"])
def test_status_and_counters(name):
    async def script(ctx, t):
        dut, csr = t.dut, t.dut.csr
        cycles0 = (await access(ctx, csr, REG["CYCLES_LO"]))[0]
        n = {k: int(t.rng.integers(1, 9)) for k in ("retired", "dropped", "updated", "busy")}
        for k in ("retired", "dropped", "updated"):
            for _ in range(n[k]):
                ctx.set(getattr(dut, k), 1)
                await ctx.tick()
                ctx.set(getattr(dut, k), 0)
                await ctx.tick()
        ctx.set(dut.len_error, 1)
        ctx.set(dut.idle, 0)
        await ctx.tick()
        ctx.set(dut.len_error, 0)
        for _ in range(n["busy"] - 1):
            await ctx.tick()
        assert await status(ctx, t) == 3, "STATUS: busy (as of the cycle before), length error"
        ctx.set(dut.idle, 1)
        await ctx.tick()
        await ctx.tick()
        sig = int(t.rng.integers(0, 1 << 32))
        ctx.set(dut.param_signature, sig)
        for reg, want in (("SAMPLES", n["retired"]), ("DROPPED", n["dropped"]), ("UPDATES", n["updated"]),
                          ("CYCLES_LO", cycles0 + n["busy"] + 2), ("CYCLES_HI", 0), ("SIGNATURE", sig),
                          ("STATUS", 2)):
            assert (await access(ctx, csr, REG[reg]))[0] == want, reg  # (CYCLES: and the STATUS read's 2)
        await access(ctx, csr, REG["STATUS"], 2)
        assert await status(ctx, t) == 0, "STATUS length error cleared"

    run_registers(name, script)


@pytest.mark.parametrize("name", CASES)
def test_parameter_access(name):
    async def script(ctx, t):
        P, WW, lay, dut, csr = t.cfg.lanes, t.cfg.weight.width, t.lay, t.dut, t.dut.csr
        for _ in range(12):  # writes take the low weight.width bits of wdata
            bank, word = int(t.rng.integers(P)), int(t.rng.integers(lay.bank_words))
            wdata = int(t.rng.integers(0, 1 << 32))
            assert await access(ctx, csr, param_address(bank, word), wdata) == (0, 3), "a parameter write, 3 cycles"
            data = ((wdata & ((1 << WW) - 1)) ^ (1 << (WW - 1))) - (1 << (WW - 1))
            bias = word >= lay.wdepth
            assert t.param_wr == [(bias, bank, word - lay.wdepth if bias else word, data)], (bank, word, wdata)
            t.param_wr.clear()
        for bank in range(P):  # reads sign-extended to 32 bits
            for word in range(lay.bank_words):
                want = int(t.words[bank, word]) & MASK
                got = await access(ctx, csr, param_address(bank, word))
                assert got == (want, 6), f"read of bank {bank} word {word}: (rdata, cycles) = ({got[0]:#010x}, " \
                                         f"{got[1]}), expected ({want:#010x}, 6)"
        # refused: while busy, a bank or word out of range, an unknown register
        for addr, idle in ((param_address(0, 0), 0), (param_address(P, 0), 1),
                           (param_address(0, lay.bank_words), 1), (0x0B, 1)):
            ctx.set(dut.idle, idle)
            await ctx.tick()
            assert await access(ctx, csr, addr) == (0, 2), f"refused read of {addr:#x}: 0, in 2 cycles"
            assert await access(ctx, csr, addr, MASK) == (0, 2), f"refused write of {addr:#x}"
            ctx.set(dut.idle, 1)
            await ctx.tick()
            assert await status(ctx, t) & 4 and not t.param_wr, f"access to {addr:#x} (idle {idle})"
            await access(ctx, csr, REG["STATUS"], 4)

    run_registers(name, script)


@pytest.mark.parametrize("name", CASES)
def test_parameter_banks(name):
    cfg, lay = config(name)
    dut = ParameterBanks(cfg, lay)
    rng = np.random.default_rng(7)
    P, depth = cfg.lanes, {"w": max(lay.wdepth, 1), "b": max(lay.ddepth, 1)}
    mem = {k: np.zeros((P, d), dtype=np.int64) for k, d in depth.items()}
    for l, params in enumerate(init_params(cfg)):
        for j in range(params.shape[0]):
            for k in range(params.shape[1]):
                bank, word = lay.param_location(l, j, k)
                kind, word = ("w", word) if word < lay.wdepth else ("b", word - lay.wdepth)
                mem[kind][bank, word] = params[j, k]
    sched = new_schedule(dut, [f"{k}_data__{p}" for k in "wb" for p in range(P)])
    wr_layout, rd_layout = dut.bus_wr.shape(), dut.bus_rd.shape()
    n_reset = max(depth.values())  # every word as initialised first, then random traffic
    n = n_reset + 300
    want = {k: np.full((n, P), -1 << 40, dtype=np.int64) for k in "wb"}  # -2**40: not compared
    for c in range(n - 1):
        cyc = {k: garbage(rng, s) for k, s in input_shapes(dut).items()}
        cyc["bus_wr"] &= ~1  # valid is bit 0
        cyc["bus_rd"] &= ~1
        read = {"w": c % depth["w"], "b": c % depth["b"]}
        writes = []  # (kind, bank, word, value)
        if c >= n_reset:
            read = {k: int(rng.integers(d)) for k, d in depth.items()}
            if rng.random() < 0.3:  # a bus read takes both read ports of every bank
                read = {k: int(rng.integers(d)) for k, d in depth.items()}
                cyc["bus_rd"] = rd_layout.const({"valid": 1, "word": read["w"], "bias_word": read["b"]}).as_bits()
            bus = "b" if rng.random() < 0.15 else "w" if rng.random() < 0.15 else None
            if bus:  # a bus write takes that memory's write port in every bank
                bank, word = int(rng.integers(P)), int(rng.integers(depth[bus]))
                value = int(codes(rng, cfg.weight, 1)[0])
                cyc["bus_wr"] = wr_layout.const({
                    "valid": 1, "bias": bus == "b", "bank": bank, "data": value & 0xFFFFFFFF,
                    "word": word if bus == "w" else garbage(rng, BANK_SHIFT),
                    "bias_word": word if bus == "b" else garbage(rng, BANK_SHIFT)}).as_bits()
                writes.append((bus, bank, word, value))
        for p in range(P):
            for kind in "wb":
                en = c >= n_reset and rng.random() < 0.4
                cyc[f"{kind}_wr__{p}__en"] = int(en)
                if en:
                    word, value = int(rng.integers(depth[kind])), int(codes(rng, cfg.weight, 1)[0])
                    cyc.update({f"{kind}_wr__{p}__addr": word, f"{kind}_wr__{p}__data": value})
                    if kind != bus:
                        writes.append((kind, p, word, value))
        if not (cyc["bus_rd"] & 1):
            cyc["addr"], cyc["slot"] = read["w"], read["b"]
        for kind in "wb":  # read before this cycle's writes; a word written now is not read (NO_RW)
            want[kind][c + 1] = mem[kind][:, read[kind]]
        for kind, bank, word, value in writes:
            if word == read[kind]:
                want[kind][c + 1, bank] = -1 << 40
            mem[kind][bank, word] = value
        sched.inputs.append(cyc)
    sched.inputs.append(dict(cyc, bus_wr=0, bus_rd=0))
    rec = run_schedule(dut, sched)
    for kind in "wb":
        got = np.array([[r[f"{kind}_data__{p}"] for p in range(P)] for r in rec])
        bad = [tuple(i) for i in np.argwhere((got != want[kind]) & (want[kind] != -1 << 40))]
        n_bad = len(bad)
        assert n_bad == 0, f"{kind}_data: first difference in cycle {bad[0][0]} (reset contents up to cycle " \
                           f"{n_reset}), bank {bad[0][1]}: expected {want[kind][bad[0]]}, hardware {got[bad[0]]} " \
                           f"({n_bad} in all)"
