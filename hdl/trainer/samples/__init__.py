"""The samples schedule (hardware.parallelism = "samples"): lane p trains sample p of a
group of P samples; docs/trainer.md, "The samples schedule"."""
