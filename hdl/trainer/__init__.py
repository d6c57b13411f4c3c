"""The trainer: forward pass, backpropagation and the optimizer's update of an MLP, as a
composition of components (docs/trainer.md opens with their block diagram).

``build_trainer(cfg)`` builds the schedule the config asks for: ``Trainer`` (the rows
schedule, lane p takes row p of a block) or ``SampleTrainer`` (the samples schedule,
lane p takes sample p of a group); both have the same ports."""
from .beat import beat_layout
from .samples.top import SampleTrainer
from .top import Trainer

__all__ = ["Trainer", "SampleTrainer", "build_trainer", "beat_layout"]


def build_trainer(cfg, *, dsp=None):
    """The trainer for ``cfg``'s ``hardware.parallelism``."""
    if cfg.parallelism == "samples":
        return SampleTrainer(cfg, dsp=dsp)
    return Trainer(cfg, dsp=dsp)
