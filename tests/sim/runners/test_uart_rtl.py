"""The trainer over its simulated UART under Verilator and Icarus: the unchanged host
driver (sim/host/driver.py) trains XOR through UartTrainer's serial pins bit-exactly, also
over a line that flips bits and drops bytes (CRC, retries, resynchronisation), a
parameter read while busy comes back as an error, and cocotbext-uart's bit-level models
talk to the same design."""
import time
from xml.etree import ElementTree

import pytest

from golden.config import load_config
from golden.datasets import load_dataset
from sim.check.golden_plan import make_plan
from sim.runners.uart_rtl import run_uart_job

from tests.conftest import require_tool

pytestmark = pytest.mark.rtl

XOR = load_config("examples/xor.toml")
# Verilator: 300 epochs (golden reaches 4/4 at epoch 263; ~10 M cycles, ~11 s); Icarus a few epochs
EPOCHS = {"verilator": 300, "icarus": 6}


def require_simulator(name):
    require_tool("iverilog" if name == "icarus" else "verilator")


def _cocotb_failures(r) -> list:
    xml = r["tests"].get("results_xml")
    assert r["tests"]["passed"] and xml, f"cocotb run failed: {r['tests']}"
    root = ElementTree.parse(xml).getroot()
    return [tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None]


def _build_root(tmp_path):
    return str(tmp_path.parent / "build")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_xor_trains_over_the_uart_bit_exactly(simulator, tmp_path):
    require_simulator(simulator)
    epochs = EPOCHS[simulator]
    plan = make_plan(XOR, load_dataset(XOR), epochs)
    t0 = time.perf_counter()
    r = run_uart_job(XOR, simulator, testcase="train", plan=plan, build_root=_build_root(tmp_path))
    wall = time.perf_counter() - t0
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert _cocotb_failures(r) == []
    assert r["samples"] == 4 * epochs and r["updates"] == 4 * epochs
    assert r["signature_reads"] == r["updates"]
    assert r["link"]["retries"] == 0
    last = r["epochs"][-1]
    if simulator == "verilator":
        assert last["rtl_test_accuracy"] == 1.0
    assert last["rtl_test_accuracy"] == last["fixed_test_accuracy"]
    assert [e["rtl_loss"] for e in r["epochs"]] == [e["fixed_loss"] for e in r["epochs"]]
    print(f"\n{simulator}: {epochs} epochs over the UART, {r['sim_cycles']:.0f} cycles in "
          f"{r['wall_seconds']:.1f} s of simulation ({r['sim_cycles'] / r['wall_seconds']:.0f} cycles/s), "
          f"{wall:.1f} s with build; {r['bytes_sent']} bytes sent, {r['bytes_received']} received")


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_parameter_read_while_busy_is_an_error_not_a_hang(simulator, tmp_path):
    require_simulator(simulator)
    plan = make_plan(XOR, load_dataset(XOR), 1)
    r = run_uart_job(XOR, simulator, testcase="busy_read", plan=plan, build_root=_build_root(tmp_path))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["refused"]
    assert _cocotb_failures(r) == []


def test_pure_python_bit_level_uart_model(tmp_path):
    require_simulator("verilator")
    plan = make_plan(XOR, load_dataset(XOR), 1)
    r = run_uart_job(XOR, "verilator", testcase="bit_level", plan=plan, build_root=_build_root(tmp_path),
                     extra={"samples": 6})
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 6 and r["updates"] == 6
    assert _cocotb_failures(r) == []


def test_codes_wider_than_16_bits_over_the_uart(tmp_path):
    """Q6.14 activations: 3 bytes per code on the wire, still bit-exact."""
    require_simulator("verilator")
    from golden.fixed import QFormat
    cfg = XOR.with_(act=QFormat(6, 14))
    plan = make_plan(cfg, load_dataset(cfg), 3)
    r = run_uart_job(cfg, "verilator", testcase="train", plan=plan, build_root=_build_root(tmp_path))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 12
    assert _cocotb_failures(r) == []


def _noisy_run(simulator, epochs, noise, tmp_path, max_tries=8):
    plan = make_plan(XOR, load_dataset(XOR), epochs)
    r = run_uart_job(XOR, simulator, testcase="train", plan=plan, build_root=_build_root(tmp_path),
                     extra={"noise": noise, "max_tries": max_tries})
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert _cocotb_failures(r) == []
    assert r["samples"] == 4 * epochs and r["updates"] == 4 * epochs
    link, line = r["link"], r["noise"]
    print(f"\n{simulator}, {epochs} epochs over a noisy line: {line['flipped_bits']} bits flipped and "
          f"{line['dropped_bytes']} bytes dropped in {line['bytes']}; {link['commands']} commands, "
          f"{link['retries']} retries ({link['refused']} refused by the bridge, {link['bad_replies']} bad replies, "
          f"{link['timeouts']} timeouts); bit-exact with golden")
    assert link["retries"] == link["refused"] + link["bad_replies"] + link["timeouts"]
    return r


def test_xor_trains_bit_exactly_through_bit_flips_and_dropped_bytes(tmp_path):
    """CRC and retries on the RTL: flips and drops both ways during training, still bit-exact."""
    require_simulator("verilator")
    r = _noisy_run("verilator", 6, {"p_flip": 0.003, "p_drop": 0.002, "seed": 11}, tmp_path)
    assert r["noise"]["flipped_bits"] >= 150 and r["noise"]["dropped_bytes"] >= 10
    assert r["link"]["refused"] > 0 and r["link"]["bad_replies"] > 0 and r["link"]["timeouts"] > 0


@pytest.mark.slow
def test_ten_thousand_flipped_bits_during_training(tmp_path):
    require_simulator("verilator")
    # twice the default test's flip rate, ten times its length: more attempts per command
    r = _noisy_run("verilator", 200, {"p_flip": 0.006, "p_drop": 0.002, "seed": 12}, tmp_path, max_tries=24)
    assert r["noise"]["flipped_bits"] >= 10_000
