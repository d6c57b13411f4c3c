"""The control registers: the trainer's CSR bus (hdl/csr.py, docs/registers.md).

Mode, learning rate and batch size out to the datapath; status, counters and the
parameter signature in; parameter words read and written through the parameter banks
while the trainer is idle.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.config import ADAM_ALPHA_WIDTH, Config
from golden.optimizers import ALPHA_MAX

from ..csr import BANK_SHIFT, ID_VALUE, READ_ONLY, REG, REGION_SHIFT, CsrResult, CsrSignature
from ..layout import Layout
from .adam_scalars import power_write_layout

__all__ = ["ControlRegisters", "bus_write_layout", "bus_read_layout"]


def bus_write_layout(cfg: Config) -> data.StructLayout:
    """A parameter (region 0) or state (regions 1-3) write from the bus: ``valid`` for one
    cycle; a bias's word (word ``bias_word`` of the bank's bias memory) or a weight's (word
    ``word``) of bank ``bank``; the region's word in the low bits of ``data``."""
    return data.StructLayout({"valid": 1, "region": 2, "bias": 1, "bank": range(cfg.lanes), "word": BANK_SHIFT,
                              "bias_word": BANK_SHIFT, "data": 32})


def bus_read_layout(cfg: Config) -> data.StructLayout:
    """A parameter or state read from the bus: in the cycle ``valid`` is high the banks read
    ``word`` and ``bias_word``; their data is taken a cycle later (``w_data``, ``b_data``)."""
    return data.StructLayout({"valid": 1, "region": 2, "word": BANK_SHIFT, "bias_word": BANK_SHIFT})


class ControlRegisters(wiring.Component):
    """The CSR bus decoder, the registers and the counters.

    Members
    -------
    csr : In(CsrSignature)
        The host's bus.
    idle : In(1)
        No sample anywhere in the trainer: parameter accesses and BATCH writes are allowed
        (taken as of the previous cycle, a register: idle gathers state from all over;
        STATUS busy is its complement).
    mode_infer, lr, batch : Out
        CTRL's mode of the next sample; the learning-rate code; the mini-batch size.
    batch_restart : Out(1)
        A BATCH write: the mini-batch count starts again.
    flush : Out(1)   (the samples schedule)
        A CTRL write with bit 1 set: the partial group starts.
    len_error, dropped, updated : In(1)
        Pulses: a sample had a wrong length (sticky STATUS bit); one was dropped; an update
        was applied (the DROPPED, UPDATES counters).
    retired : In(range(retire_max + 1))
        Samples completed this cycle (SAMPLES): 1 at most in the rows schedule, a group's
        count in the samples schedule.
    param_signature, state_signature : In(32)
        The SIGNATURE and STATE_SIGNATURE registers' values.
    s_w_data, s_b_data : In(32).array(lanes)   (momentum, Adam)
        The state words the bus read (hdl/trainer/state.py), two cycles after ``param_rd.valid`` (registered there).
    adam_lr, pow_wr; p1, p2 : Out; In   (Adam)
        The ADAM_LR register; BETA1_POW/BETA2_POW writes and values (hdl/trainer/adam_scalars.py).
    param_wr, param_rd : Out(bus_write_layout), Out(bus_read_layout)
        Parameter accesses for the banks; ``w_data``, ``b_data`` (In, per bank): the words
        read a cycle after ``param_rd.valid``.

    A register access takes 2 cycles (decode, ack); a parameter write 3, a read 6 (the
    bank's word registered, selected within a group of four banks, then among groups).
    """

    def __init__(self, cfg: Config, lay: Layout, *, retire_max: int = 1):
        self._cfg, self._lay = cfg, lay
        P, WW = cfg.lanes, cfg.weight.width
        super().__init__({
            "csr": In(CsrSignature()),
            "idle": In(1),
            "mode_infer": Out(1),
            "lr": Out(16, init=cfg.lr_code),
            "batch": Out(16, init=cfg.batch_size),
            "batch_restart": Out(1),
            **({"flush": Out(1)} if cfg.parallelism == "samples" else {}),
            "len_error": In(1),
            "dropped": In(1),
            "retired": In(range(retire_max + 1)),
            "updated": In(1),
            "param_signature": In(32),
            "state_signature": In(32),
            **self._optimizer_ports(cfg),
            "param_wr": Out(bus_write_layout(cfg)),
            "param_rd": Out(bus_read_layout(cfg)),
            "w_data": In(signed(WW)).array(P),
            "b_data": In(signed(WW)).array(P),
        })

    @staticmethod
    def _optimizer_ports(cfg) -> dict:
        from .state import state_regions
        ports = {}
        if state_regions(cfg):
            ports.update({"s_w_data": In(32).array(cfg.lanes), "s_b_data": In(32).array(cfg.lanes)})
        if cfg.optimizer == "adam":
            ports.update({"adam_lr": Out(unsigned(ADAM_ALPHA_WIDTH - 1), init=cfg.adam_lr_code),
                          "pow_wr": Out(power_write_layout()),
                          "p1": In(32), "p2": In(32)})
        return ports

    def elaborate(self, platform):
        cfg, lay, csr = self._cfg, self._lay, self.csr
        m = Module()
        P, WW = cfg.lanes, cfg.weight.width
        idle_r = Signal()
        m.d.sync += idle_r.eq(self.idle)

        err_len, err_bus = Signal(), Signal()
        samples, dropped, updates, cycles = Signal(32), Signal(32), Signal(32), Signal(64)
        with m.If(self.len_error):
            m.d.sync += err_len.eq(1)
        with m.If(self.dropped):
            m.d.sync += dropped.eq(dropped + 1)
        m.d.sync += samples.eq(samples + self.retired)
        with m.If(self.updated):
            m.d.sync += updates.eq(updates + 1)
        # cycles: every cycle the trainer works on a sample (loading a partial one, holding a
        # loaded one, or computing); a cycle in which both happen counts once. Counted a
        # cycle late (from idle_r: idle gathers state from all over the trainer), which
        # moves each busy stretch by a cycle and leaves its length, so the count read while
        # idle, as STATUS says, is the same
        with m.If(~idle_r):
            m.d.sync += cycles.eq(cycles + 1)

        from .state import state_regions
        param = csr.addr[28]
        region = csr.addr[REGION_SHIFT:28]
        bank = csr.addr[BANK_SHIFT:REGION_SHIFT]
        word = csr.addr[:BANK_SHIFT]
        bank_sel = bank[:max(1, (P - 1).bit_length())] if P > 1 else 0
        region_ok = region == 0
        for r in state_regions(cfg):
            region_ok = region_ok | (region == r)
        bank_ok = (bank < P) & (word < lay.bank_words) & region_ok
        is_bias = word >= lay.wdepth  # bus words wdepth.. of a bank are its biases
        bias_word = Signal(BANK_SHIFT)
        m.d.comb += bias_word.eq(word - lay.wdepth)
        rdata, cycles_hi = Signal(32), Signal(32)
        # how the access ended (OK unless a _refuse below), for the bus's `result`
        self._result = result = Signal(CsrResult)
        m.d.comb += [csr.rdata.eq(rdata), csr.result.eq(result)]
        # registered first: the memories' write multiplexers then switch on a state bit,
        # not on the idle/bus decode
        pw = Signal(bus_write_layout(cfg))
        m.d.comb += [self.param_wr.eq(pw), self.param_rd.word.eq(pw.word), self.param_rd.bias_word.eq(pw.bias_word),
                     self.param_rd.region.eq(pw.region)]
        regs_ro = {
            REG["ID"]: Const(ID_VALUE, 32),
            REG["CTRL"]: self.mode_infer,
            REG["STATUS"]: Cat(~idle_r, err_len, err_bus),  # (busy as of the cycle before: idle is a wide OR)
            REG["LR"]: self.lr,
            REG["BATCH"]: self.batch,
            REG["SAMPLES"]: samples,
            REG["CYCLES_HI"]: cycles_hi,
            REG["DROPPED"]: dropped,
            REG["SIGNATURE"]: self.param_signature,
            REG["UPDATES"]: updates,
            REG["STATE_SIGNATURE"]: self.state_signature,
        }
        if cfg.optimizer == "adam":
            regs_ro.update({REG["ADAM_LR"]: self.adam_lr, REG["BETA1_POW"]: self.p1, REG["BETA2_POW"]: self.p2})
        with m.FSM(name="csr"):
            with m.State("IDLE"):
                with m.If(csr.re | csr.we):
                    m.d.sync += result.eq(CsrResult.OK)
                    with m.If(param):
                        with m.If(~idle_r | ~bank_ok):
                            m.d.sync += [*self._refuse(err_bus, Mux(bank_ok, CsrResult.REFUSED, CsrResult.UNMAPPED)),
                                         rdata.eq(0)]
                            m.next = "ACK"
                        with m.Else():
                            m.d.sync += [pw.bias.eq(is_bias), pw.bank.eq(bank_sel), pw.word.eq(word),
                                         pw.bias_word.eq(bias_word), pw.region.eq(region)]
                            with m.If(csr.we):
                                m.d.sync += [pw.data.eq(csr.wdata), rdata.eq(0)]
                                m.next = "PARAM_WRITE"
                            with m.Else():
                                m.next = "PARAM_ADDR"
                    with m.Elif(csr.we):
                        self._write_register(m, err_len, err_bus, idle_r)
                        m.d.sync += rdata.eq(0)
                        m.next = "ACK"
                    with m.Else():
                        with m.Switch(csr.addr):
                            for addr, value in regs_ro.items():
                                with m.Case(addr):
                                    m.d.sync += rdata.eq(value)
                            with m.Case(REG["CYCLES_LO"]):
                                m.d.sync += [rdata.eq(cycles[:32]), cycles_hi.eq(cycles[32:])]
                            with m.Default():
                                m.d.sync += [rdata.eq(0), *self._refuse(err_bus, CsrResult.UNMAPPED)]
                        m.next = "ACK"
            with m.State("PARAM_WRITE"):
                m.d.comb += self.param_wr.valid.eq(1)
                m.next = "ACK"
            with m.State("PARAM_ADDR"):
                m.d.comb += self.param_rd.valid.eq(1)
                m.next = "PARAM_READ"
            self._read_parameter(m, pw, rdata)
            with m.State("ACK"):  # one cycle; the next cycle may start the next access
                m.d.comb += csr.ack.eq(1)
                m.next = "IDLE"
        return m

    def _refuse(self, err_bus, why):
        """An access that fails: the sticky STATUS flag, and the bus's ``result`` for it."""
        return [err_bus.eq(1), self._result.eq(why)]

    def _write_register(self, m, err_len, err_bus, idle_r):
        cfg, csr = self._cfg, self.csr
        with m.Switch(csr.addr):
            with m.Case(REG["CTRL"]):
                m.d.sync += self.mode_infer.eq(csr.wdata[0])
                if hasattr(self, "flush"):
                    m.d.comb += self.flush.eq(csr.wdata[1])
            with m.Case(REG["STATUS"]):  # write 1 to clear the sticky error flags
                with m.If(csr.wdata[1]):
                    m.d.sync += err_len.eq(0)
                with m.If(csr.wdata[2]):
                    m.d.sync += err_bus.eq(0)
            with m.Case(REG["LR"]):
                with m.If((csr.wdata >= 1) & (csr.wdata <= 0xFFFF)):
                    m.d.sync += self.lr.eq(csr.wdata)
                with m.Else():
                    m.d.sync += self._refuse(err_bus, CsrResult.REFUSED)
            if cfg.optimizer == "adam":
                with m.Case(REG["ADAM_LR"]):
                    with m.If(csr.wdata <= ALPHA_MAX):
                        m.d.sync += self.adam_lr.eq(csr.wdata)
                    with m.Else():
                        m.d.sync += self._refuse(err_bus, CsrResult.REFUSED)
                for which, name in enumerate(("BETA1_POW", "BETA2_POW")):
                    with m.Case(REG[name]):
                        with m.If(idle_r):
                            m.d.comb += [self.pow_wr.valid.eq(1), self.pow_wr.which.eq(which),
                                         self.pow_wr.data.eq(csr.wdata)]
                        with m.Else():
                            m.d.sync += self._refuse(err_bus, CsrResult.REFUSED)
            with m.Case(REG["BATCH"]):
                with m.If((csr.wdata >= 1) & (csr.wdata <= cfg.batch_size) & idle_r):
                    m.d.sync += self.batch.eq(csr.wdata)
                    m.d.comb += self.batch_restart.eq(1)
                with m.Else():
                    m.d.sync += self._refuse(err_bus, CsrResult.REFUSED)
            with m.Case(*(REG[name] for name in READ_ONLY)):
                m.d.sync += self._refuse(err_bus, CsrResult.REFUSED)
            with m.Default():
                m.d.sync += self._refuse(err_bus, CsrResult.UNMAPPED)

    def _read_parameter(self, m, pw, rdata):
        """States PARAM_READ, (PARAM_STATE,) PARAM_GROUP, PARAM_SELECT: every bank's word
        registered first (block RAM output straight into a register; with optimizer state,
        the state banks' words a cycle later), then the bank chosen in two registered
        steps (the banks sit all over the die): within groups of four banks, then among
        the groups."""
        P, WW = self._cfg.lanes, self._cfg.weight.width
        WW = 32 if hasattr(self, "s_w_data") else WW  # (state words: 32-bit as the bus sees them)
        words = [Signal(signed(WW), name=f"csr_word{p}") for p in range(P)]
        biases = [Signal(signed(WW), name=f"csr_bias{p}") for p in range(P)]
        n_groups = -(-P // 4)
        group = [Signal(signed(WW), name=f"csr_group{g}") for g in range(n_groups)]
        sel = Signal(signed(WW))
        state = hasattr(self, "s_w_data")
        with m.State("PARAM_READ"):
            # the parameter banks' words as they leave the block RAMs; the state banks
            # register theirs (hdl/trainer/state.py): the region is chosen a cycle later
            for p in range(P):
                m.d.sync += [words[p].eq(self.w_data[p]), biases[p].eq(self.b_data[p])]
            m.next = "PARAM_STATE" if state else "PARAM_GROUP"
        if state:
            with m.State("PARAM_STATE"):
                with m.If(pw.region != 0):
                    m.d.sync += [words[p].eq(self.s_w_data[p]) for p in range(P)]
                    m.d.sync += [biases[p].eq(self.s_b_data[p]) for p in range(P)]
                m.next = "PARAM_GROUP"
        with m.State("PARAM_GROUP"):
            for g in range(n_groups):
                in_group = Array(Mux(pw.bias, biases[p], words[p]) for p in range(4 * g, min(P, 4 * g + 4)))
                m.d.sync += group[g].eq(in_group[pw.bank[:2]] if P > 1 else in_group[0])
            m.next = "PARAM_SELECT"
        with m.State("PARAM_SELECT"):
            m.d.comb += sel.eq(Array(group)[pw.bank >> 2] if n_groups > 1 else group[0])
            m.d.sync += rdata.eq(sel.as_unsigned() | Mux(sel < 0, Const((0xFFFFFFFF << WW) & 0xFFFFFFFF, 32), 0)
                                 if WW < 32 else sel)
            m.next = "ACK"
