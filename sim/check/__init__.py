"""What the hardware should do and whether it did: the golden plan (``golden_plan``), the
in-order ``Scoreboard`` and its ``Mismatch`` record (``scoreboard``), the trainer checked
sample by sample through a host driver (``trainer_session``) and the training loop over a
plan (``train_flow``)."""
