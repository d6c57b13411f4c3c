"""The trainer's generated Verilog under Icarus and Verilator, through the host driver and
cocotb: XOR trains to 4/4 with zero mismatches, a digits slice trains bit-exactly, random
stalls change nothing, wrong-length samples are dropped and flagged."""
import pytest

from golden.config import load_config
from golden.datasets import load_dataset
from sim.check.golden_plan import make_plan
from sim.runners.rtl_run import run_trainer_job
from sim.train_job import run_train

from ..conftest import require_tool
from .configs import optimizer_variants, xor

pytestmark = pytest.mark.rtl


def require_simulator(name):
    """Skip locally when a simulator is missing; in CI a missing simulator is a failure."""
    require_tool("iverilog" if name == "icarus" else "verilator")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_xor_trains_to_4_of_4_bit_exactly(simulator, tmp_path):
    require_simulator(simulator)
    cfg = xor()
    r = run_train(cfg, simulator, check_params="every", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 4 * cfg.epochs
    assert r["rtl_test_accuracy"] == 1.0
    assert r["fixed_test_accuracy"] == 1.0
    # the RTL's running loss and golden's are the same numbers, epoch by epoch
    assert [h["rtl_loss"] for h in r["history"]] == [h["fixed_loss"] for h in r["history"]]


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name,cfg", optimizer_variants(), ids=[v[0] for v in optimizer_variants()])
def test_optimizers_train_bit_exactly(simulator, name, cfg, tmp_path):
    """Momentum and Adam: every output, and after every update every parameter, every state
    word and Adam's powers (read back over the bus) equal golden's; XOR reaches 4/4."""
    require_simulator(simulator)
    # XOR to 4/4 on Verilator; Icarus (several times slower) checks the first 30 epochs
    to_the_end = name.startswith("xor") and simulator == "verilator"
    r = run_train(cfg, simulator, epochs=None if to_the_end else 30 if name.startswith("xor") else 12,
                  check_params="every", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["updates"] == r["samples"] // cfg.batch_size > 0
    if to_the_end:
        assert r["rtl_test_accuracy"] == 1.0


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_digits_slice_trains_bit_exactly(simulator, tmp_path):
    require_simulator(simulator)
    cfg = load_config("examples/digits.toml")
    n = 12 if simulator == "icarus" else 150
    r = run_train(cfg, simulator, epochs=1, max_samples=n, check_params="signature",
                  build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == n and r["updates"] == n


def test_digits_adam_one_epoch_bit_exactly_on_verilator(tmp_path):
    """examples/digits-adam.toml, one whole epoch: every output and, after every update, the
    parameter and state signatures equal golden's; a full readback of parameters and state
    at the end."""
    require_simulator("verilator")
    cfg = load_config("examples/digits-adam.toml")
    r = run_train(cfg, "verilator", epochs=1, check_params="signature", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    n = len(load_dataset(cfg).X_train)
    assert r["samples"] == n and r["updates"] == n // cfg.batch_size


def test_wrong_expectations_are_caught_with_their_sample(tmp_path):
    """The testbench queues many samples per wake-up: a wrong expected signature (that of
    the last sample of the first queue, checked when the next queue's first result
    arrives) and a wrong expected output are still each reported, the first with its
    sample, expected and actual values."""
    require_simulator("verilator")
    cfg = load_config("examples/digits.toml")
    plan = make_plan(cfg, load_dataset(cfg), 1, 100, evaluate=False)
    ep = plan.epochs[0]
    k = 4096 // (cfg.layers[0] + cfg.layers[-1]) - 1  # sim/host/cocotb_transport.py: queue_capacity - 1
    sig, params, state_sig, state = ep.updates[k]
    ep.updates[k] = (sig ^ 0x20, params, state_sig, state)
    ep.outputs[80][3] += 1
    r = run_trainer_job(cfg, "verilator", plan=plan, build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 2
    assert r["first_mismatch"] == f"first mismatch at sample {k}: signature: expected {sig ^ 0x20}, actual {sig}"


@pytest.mark.parametrize("cfg", [
    xor(batch_size=2, rounding="stochastic", lanes=3),
    # the softmax output waits for room for a whole vector in the output FIFO
    xor(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy", lanes=2),
], ids=["mse-stochastic-batch2", "softmax"])
def test_random_stalls_change_nothing(cfg, tmp_path):
    require_simulator("verilator")
    r = run_train(cfg, "verilator", epochs=20, check_params="every", stall_prob=0.4,
                  build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 80


@pytest.mark.parametrize("simulator, cfg", [
    ("icarus", xor()),
    ("verilator", xor(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy", lanes=2,
                      batch_size=2, rounding="stochastic")),
    ("icarus", xor(layers=(2, 4, 3), activations=("relu", "softmax"), loss="cross_entropy", lanes=10,
                   batch_size=10, parallelism="samples")),
    ("verilator", xor(optimizer="adam", learning_rate=0.05, layers=(2, 5, 4, 1), activations=("sigmoid",) * 3,
                      lanes=2, batch_size=4, rounding="stochastic", sr_seed=5)),
], ids=["icarus-xor", "verilator-softmax-batch2-stochastic", "icarus-samples-10lanes", "verilator-adam-b4-stochastic"])
def test_ecp5_multipliers_train_bit_exactly(simulator, cfg, tmp_path):
    """The trainer as synthesis for ecp5-85k builds it, every multiplier a MULT18X18D with
    its own registers (hdl/dsp.py), simulated on the primitive's model (sim/runners/primitives):
    the same bits as golden, so the primitives change nothing but timing. The 10-lane
    samples trainer also has its control's register copies as TRELLIS_FF instances; Adam's
    cores and its step-size scalars multiply on MULT18X18D too."""
    require_simulator(simulator)
    r = run_train(cfg, simulator, epochs=10, check_params="every", dsp="ecp5", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 40


def test_output_backpressure_leaves_the_signature_check_exact(tmp_path):
    """Heavy backpressure on m_data lets a sample's update run while its result waits to be
    taken; the testbench takes the signature from the cycle the result first appeared
    (sim/runners/rtl_run.py taps), so every update is still checked and none is a false mismatch.
    (Taken at the last beat's handshake instead, 28 of 80 updates mismatch here.)"""
    require_simulator("verilator")
    r = run_train(xor(), "verilator", epochs=20, check_params="signature", stall_prob=0.8,
                  build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 80


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_wrong_length_samples_are_dropped_and_flagged(simulator, tmp_path):
    require_simulator(simulator)
    r = run_trainer_job(xor(), simulator, testcase="bad_length", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("changes", [
    {},
    {"batch_size": 4, "rounding": "stochastic", "learning_rate": 0.02},
    {"layers": (64, 32, 16, 12, 10), "activations": ("relu", "tanh", "leaky_relu", "softmax")},
], ids=["digits", "digits-batch4-stochastic", "digits-3-hidden-layers"])
def test_digits_full_epoch_on_verilator(changes, tmp_path):
    require_simulator("verilator")
    cfg = load_config("examples/digits.toml")
    cfg = cfg.with_(**changes) if changes else cfg
    r = run_train(cfg, "verilator", epochs=1, check_params="signature", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 1348
    assert r["rtl_test_accuracy"] == r["fixed_test_accuracy"]


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", ["xor-lanes4-batch4", "3layer-b8-4lanes-sr"])
def test_samples_schedule_trains_bit_exactly(simulator, name, tmp_path):
    """hardware.parallelism = "samples": every output, and after every update every
    parameter (read back over the bus), equal golden's; XOR reaches 4/4 on Verilator."""
    from .configs import sample_variants
    require_simulator(simulator)
    cfg = dict(sample_variants())[name]
    to_the_end = name.startswith("xor") and simulator == "verilator"
    r = run_train(cfg, simulator, epochs=None if to_the_end else 30 if name.startswith("xor") else 8,
                  check_params="every", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["updates"] == r["samples"] // cfg.batch_size > 0
    if to_the_end:
        assert r["rtl_test_accuracy"] == 1.0


def test_samples_schedule_adam_waits_for_the_queued_biases_on_verilator(tmp_path):
    """Adam, samples schedule, a layer 0 of more weights than the update's latency: the
    next group (streamed in while this one trains) must wait for layer 0's queued biases
    before its forward pass reads them; the signatures are read while the next group's
    update is already issued. Without the wait the third sample's outputs already differed."""
    require_simulator("verilator")
    cfg = load_config("examples/iris.toml").with_(parallelism="samples", lanes=2, batch_size=2, optimizer="adam",
                                                  learning_rate=0.01, layers=(4, 12, 3))
    r = run_train(cfg, "verilator", dataset="iris", epochs=1, max_samples=20, check_params="signature",
                  evaluate=False, build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 20 and r["updates"] == 10


def _small_digits_samples(**changes):
    """Digits through a small samples-schedule trainer (4 lanes, batch 8): 150 samples an
    epoch leave a partial group at each epoch's end (FLUSHed) and a group closed by the
    batch's end at the next epoch's start."""
    cfg = load_config("examples/digits-samples.toml")
    return cfg.with_(layers=(64, 8, 10), lanes=4, batch_size=8, **changes)


@pytest.mark.parametrize("stall_prob", [0.0, 0.3], ids=["no-stalls", "stalls"])
def test_samples_schedule_queued_groups_check_every_update(stall_prob, tmp_path):
    """The samples schedule with updates checked by signature: the testbench sends several
    groups per burst (sim/check/trainer_session.py: _train_groups, the wrapper holding each
    group until the results of the group before the previous one are in) and checks every
    output and every update's signatures, across partial groups and epochs, with and
    without random stalls; the cycle count is that of a host sending a group at a time."""
    require_simulator("verilator")
    cfg = _small_digits_samples()
    r = run_train(cfg, "verilator", epochs=2, max_samples=150, check_params="signature", stall_prob=stall_prob,
                  evaluate=False, build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["samples"] == 300 and r["updates"] == 300 // cfg.batch_size


def test_samples_schedule_queued_groups_catch_wrong_expectations(tmp_path):
    """Groups queued several per burst: a wrong expected update signature (checked at the
    next group's first result, here inside the same burst) and a wrong expected output are
    each reported, the first with its sample."""
    require_simulator("verilator")
    cfg = _small_digits_samples()
    plan = make_plan(cfg, load_dataset(cfg), 1, 100, evaluate=False)
    ep = plan.epochs[0]
    k = 15  # the second batch's last sample: its update is checked at sample 16's result
    sig, params, state_sig, state = ep.updates[k]
    ep.updates[k] = (sig ^ 0x20, params, state_sig, state)
    ep.outputs[50][3] += 1
    r = run_trainer_job(cfg, "verilator", plan=plan, build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 2
    assert r["first_mismatch"] == f"first mismatch at sample {k}: signature: expected {sig ^ 0x20}, actual {sig}"


@pytest.mark.slow  # (about 3 minutes with the 16-lane build; the default suite keeps under 20 minutes)
def test_digits_16_lanes_samples_schedule_one_epoch_on_verilator(tmp_path):
    """examples/digits-samples.toml (16 lanes, batch 16, softmax): one whole epoch, every
    output and every update's signature equal golden's, a full readback at the end; the
    hardware counter's MAC utilization at least 0.95 (docs/trainer.md)."""
    require_simulator("verilator")
    cfg = load_config("examples/digits-samples.toml")
    r = run_train(cfg, "verilator", epochs=1, check_params="signature", build_root=str(tmp_path.parent / "build"))
    assert r["mismatches"] == 0, r["first_mismatch"]
    n = len(load_dataset(cfg).X_train)
    assert r["samples"] == n and r["updates"] == n // cfg.batch_size
    assert r["mac_utilization"] >= 0.95, r["mac_utilization"]
