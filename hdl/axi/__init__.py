"""The trainer behind standard AXI interfaces (docs/registers.md, "AXI"): AXI4-Lite for the
registers and the parameter window, AXI4-Stream for samples and results."""
from .lite import AxiLiteToCsr
from .signatures import AxiLiteSignature, AxiStreamSignature
from .top import AxiTrainer, axi_data_width

__all__ = ["AxiLiteSignature", "AxiStreamSignature", "AxiLiteToCsr", "AxiTrainer", "axi_data_width"]
