"""Small trainer configs for the tests: each varies one thing the sequencer must get right."""
from golden.config import load_config

XOR = "examples/xor.toml"


def xor(**changes):
    cfg = load_config(XOR)
    return cfg.with_(**changes) if changes else cfg


def variants():
    """(id, config) pairs: lane counts that do and do not divide the layers, depth, batch,
    stochastic rounding, every hidden activation, softmax + cross-entropy."""
    return [
        ("xor-4lanes", xor()),
        ("1lane-deep-backward", xor(lanes=1, layers=(2, 4, 3, 1), activations=("sigmoid",) * 3)),
        ("3lanes-partial-blocks", xor(lanes=3, layers=(2, 5, 1))),
        ("3-hidden-layers", xor(lanes=2, layers=(2, 5, 4, 3, 1), activations=("sigmoid",) * 4)),
        ("batch4", xor(batch_size=4, lanes=3)),
        ("stochastic-batch2", xor(rounding="stochastic", batch_size=2, lanes=3, sr_seed=7)),
        ("tanh-relu-leaky-linear", xor(layers=(2, 5, 4, 3, 1), lanes=2,
                                       activations=("tanh", "relu", "leaky_relu", "linear"))),
        ("interpolated-tables", xor(lut_interpolate=True, activations=("tanh", "sigmoid"))),
        ("softmax-ce", xor(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy",
                           lanes=2)),
    ]


def optimizer_variants():
    """(id, config): XOR with each optimizer, and a 3-layer net with batch 4 and stochastic
    rounding with each (docs/arithmetic.md §10; issue: momentum and Adam on chip)."""
    deep = dict(layers=(2, 5, 4, 1), activations=("sigmoid",) * 3, lanes=2, batch_size=4,
                rounding="stochastic", sr_seed=5)
    return [
        ("xor-momentum", xor(optimizer="momentum", learning_rate=0.5, epochs=100)),
        ("xor-adam", xor(optimizer="adam", learning_rate=0.1, epochs=100)),
        ("3layer-b4-sr-momentum", xor(optimizer="momentum", learning_rate=0.5, **deep)),
        ("3layer-b4-sr-adam", xor(optimizer="adam", learning_rate=0.05, **deep)),
    ]


def sample_variants():
    """(id, config): the samples schedule (lane p trains sample p of a group): lanes =
    batch, several groups per batch, a 3-layer net with batch 8 on 4 lanes and stochastic
    rounding, every hidden activation, each optimizer."""
    s = dict(parallelism="samples")
    deep = dict(layers=(2, 5, 4, 1), activations=("sigmoid",) * 3, lanes=4, batch_size=8,
                rounding="stochastic", sr_seed=5, **s)
    return [
        ("xor-lanes4-batch4", xor(lanes=4, batch_size=4, **s)),
        ("xor-lanes2-batch4", xor(lanes=2, batch_size=4, **s)),
        ("1lane", xor(lanes=1, batch_size=1, **s)),
        ("3layer-b8-4lanes-sr", xor(learning_rate=1.0, **deep)),
        ("tanh-relu-leaky-linear", xor(layers=(2, 5, 4, 3, 1), lanes=3, batch_size=3,
                                       activations=("tanh", "relu", "leaky_relu", "linear"), **s)),
        ("softmax-ce", xor(layers=(2, 5, 3), activations=("tanh", "softmax"), loss="cross_entropy", lanes=2,
                           batch_size=4, **s)),
        # ReLU below a softmax (sigma' a select; the lanes' exp and reciprocal tables in
        # block RAMs of two lanes, one lane alone)
        ("relu-softmax-3lanes", xor(layers=(2, 6, 4, 3), activations=("relu", "relu", "softmax"),
                                    loss="cross_entropy", lanes=3, batch_size=6, **s)),
        # more lanes than a group of LANE_GROUP (the control's copies per group of lanes)
        ("relu-softmax-10lanes", xor(layers=(2, 4, 3), activations=("relu", "softmax"), loss="cross_entropy",
                                     lanes=10, batch_size=10, **s)),
        ("3layer-b8-sr-momentum", xor(optimizer="momentum", learning_rate=0.5, **deep)),
        ("3layer-b8-sr-adam", xor(optimizer="adam", learning_rate=0.05, **deep)),
    ]
