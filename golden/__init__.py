"""NumPy golden models of backprop-fpga: the arithmetic spec every hardware bit is checked against.

Never imports Amaranth or cocotb.
"""
from .config import Config, ConfigError, load_config
from .fixed import QFormat

__all__ = ["Config", "ConfigError", "load_config", "QFormat"]
