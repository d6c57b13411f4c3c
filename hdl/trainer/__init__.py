"""The trainer: forward pass, backpropagation and SGD update of an MLP, as a composition of
components (docs/trainer.md opens with their block diagram)."""
from .top import Trainer, beat_layout

__all__ = ["Trainer", "beat_layout"]
