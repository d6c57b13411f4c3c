"""``backprop-fpga explore``: design-space exploration on Dask distributed.

One file a job:

- ``space.py``   SPACE.toml -> the points (product of lists of config values), invalid
                 points with the config's own message, each point keyed by its config hash;
- ``cycles.py``  cycles per sample and MAC utilization from the schedule formula;
- ``stages.py``  the stages of a point (golden, cycles, synth, rtl), one Dask task each;
- ``runner.py``  the Dask client (embedded LocalCluster or a scheduler address), the chained
                 submission, results as they finish, retries, lost workers;
- ``store.py``   results.jsonl (what finished; reruns skip it) and a point's row;
- ``outputs.py`` results.csv, the Pareto front and pareto.png;
- ``flow.py``    the job: run a space into an output directory, report.json;
- ``bench.py``   the scale-out benchmark (the same space on 1 and on N workers).
"""
