"""AdamScalars (hdl/trainer/adam_scalars.py) alone in amaranth.sim against golden: the
scalars latched at each update's start equal golden.optimizers.adam_scalars of the powers
and ADAM_LR before it, the powers then move by golden's next_beta_power, and a bus write of
a power takes effect (everything settles within the documented SETTLE_CYCLES)."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.config import load_config
from golden.optimizers import adam_scalars, initial_beta_power, next_beta_power
from hdl.trainer.adam_scalars import SETTLE_CYCLES as SETTLE, AdamScalars


@pytest.mark.parametrize("changes", [{}, {"beta1": 0.5, "beta2": 0.99999, "learning_rate": 0.02},
                                     {"recip_entries_log2": 6, "recip_frac_bits": 13}],
                         ids=["digits-adam", "other-betas", "small-recip-table"])
def test_scalars_and_powers_match_golden(changes):
    cfg = load_config("examples/digits-adam.toml").with_(**changes)
    dut = AdamScalars(cfg)
    rng = np.random.default_rng(1)
    seen = []

    async def bench(ctx):
        p1, p2, lr = initial_beta_power(cfg, cfg.adam_c1), initial_beta_power(cfg, cfg.adam_c2), cfg.adam_lr_code
        for step in range(40):
            if step % 10 == 9:  # the bus restores arbitrary powers (and the host another lr)
                p1, p2 = int(rng.integers(1, 1 << 32)), int(rng.integers(1, 1 << 32))
                lr = int(rng.integers(16, 1 << 17))
                for which, p in ((0, p1), (1, p2)):
                    ctx.set(dut.pow_wr, {"valid": 1, "which": which, "data": p})
                    await ctx.tick()
                ctx.set(dut.pow_wr.valid, 0)
            ctx.set(dut.lr, lr)
            await ctx.tick().repeat(SETTLE)
            assert (ctx.get(dut.p1), ctx.get(dut.p2)) == (p1, p2), f"powers before update {step}"
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            alpha, (r2, e2) = adam_scalars(cfg, p1, p2, lr)
            got = (ctx.get(dut.alpha), ctx.get(dut.r2), ctx.get(dut.e2))
            assert got == (alpha, r2, e2), f"update {step}: (alpha, r2, e2) {got}, golden {(alpha, r2, e2)}"
            seen.append(got)
            p1, p2 = next_beta_power(p1, cfg.adam_c1), next_beta_power(p2, cfg.adam_c2)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(seen)) > 20, "the scalars hardly changed: the test would not see a wrong update"
