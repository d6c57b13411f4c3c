"""SPACE.toml: the product of the lists, merged tables, invalid points with the config's own
message, and one clear error for each mistake in the space itself."""
from __future__ import annotations

import pytest

from golden.config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from sim.flows.explore.space import SpaceError, load_space, parse_space, point_hash, show_value

BASE = load_config("examples/digits.toml")


def test_the_space_is_the_product_in_key_order():
    s = parse_space('"training.rounding" = ["nearest_even", "stochastic"]\n"hardware.lanes" = [4, 8, 16]\n', BASE)
    assert s.keys == ("training.rounding", "hardware.lanes") and len(s) == 6
    assert [(p.cfg.rounding, p.cfg.lanes) for p in s.points] == [
        (r, n) for r in ("nearest_even", "stochastic") for n in (4, 8, 16)]
    assert [p.index for p in s.points] == list(range(6))
    # everything not varied is the base config's
    assert all(p.cfg.with_(rounding=BASE.rounding, lanes=BASE.lanes) == BASE for p in s.points)


def test_quoted_unquoted_and_section_spellings_mean_the_same_paths():
    quoted = parse_space('"formats.act.frac_bits" = [8, 9]', BASE)
    dotted = parse_space('formats.act.frac_bits = [8, 9]', BASE)
    table = parse_space('[formats.act]\nfrac_bits = [8, 9]', BASE)
    assert [p.key for p in quoted.points] == [p.key for p in dotted.points] == [p.key for p in table.points]
    assert [str(p.cfg.act) for p in quoted.points] == ["Q6.8", "Q6.9"]


def test_a_table_value_merges_into_the_base_table():
    s = parse_space('"formats" = [{ act = { frac_bits = 6 }, weight = { int_bits = 3, frac_bits = 5 } }]', BASE)
    cfg = s.points[0].cfg
    assert (str(cfg.act), str(cfg.weight), str(cfg.error)) == ("Q6.6", "Q3.5", str(BASE.error))
    assert s.points[0].label() == "formats={act={frac_bits=6},weight=Q3.5}"


def test_an_invalid_point_carries_the_config_message_and_the_others_run():
    s = parse_space('"formats.act" = [{ int_bits = 6, frac_bits = 10 }, { int_bits = 6, frac_bits = 20 }]', BASE)
    ok, bad = s.points
    assert ok.valid and not bad.valid and bad.cfg is None
    d = config_to_dict(BASE)
    d["formats"]["act"] = {"int_bits": 6, "frac_bits": 20}
    with pytest.raises(ConfigError) as e:
        config_from_dict(d)
    assert bad.error == str(e.value) and "formats.act" in bad.error


def test_the_point_key_is_the_hash_of_the_full_resolved_config():
    a = parse_space('"hardware.lanes" = [8]', BASE).points[0]
    b = parse_space('"training.rounding" = ["nearest_even"]', BASE).points[0]
    assert a.key == b.key == point_hash(config_to_dict(BASE))  # the same config, however it was reached
    c = parse_space('"hardware.lanes" = [8]', BASE.with_(epochs=3)).points[0]
    assert c.key != a.key and len(c.key) == 12


@pytest.mark.parametrize("text, needle", [
    ('"formats.activation" = [1]', "key 'formats.activation': unknown config key 'activation'; allowed in "
                                   "[formats]: act, weight, error, lr_frac_bits"),
    ('"hardwre.lanes" = [1]', "unknown config key 'hardwre'; allowed in the config's top level (its sections): "
                              "network, formats"),
    ('"hardware.lanes" = []', "key 'hardware.lanes' has an empty list"),
    ('"hardware.lanes" = 8', "key 'hardware.lanes' = 8: the value must be a list of the values to try"),
    ('"hardware.lanes.x" = [1]', "'hardware.lanes' is a value, not a table"),
    ('"formats.act" = [{ int_bits = 6, frac = 3 }]', "unknown key 'frac'; allowed: int_bits, frac_bits"),
    ('"formats.act" = [12]', "12 is not a table; 'formats.act' is a table with keys int_bits, frac_bits"),
    ('"formats" = [{ act = { frac_bits = 6 } }]\n"formats.act.frac_bits" = [3]', "overlap"),
    ('', "has no keys"),
    ('"hardware.lanes" = [1', "is not valid TOML"),
])
def test_mistakes_in_the_space_name_the_key_the_value_and_what_is_allowed(text, needle):
    with pytest.raises(SpaceError) as e:
        parse_space(text, BASE, source="s.toml")
    assert needle in str(e.value) and str(e.value).startswith("s.toml")


def test_a_missing_space_file_is_a_space_error(tmp_path):
    with pytest.raises(SpaceError, match="cannot be read"):
        load_space(tmp_path / "nope.toml", Config())


def test_values_are_shown_compactly():
    assert show_value({"int_bits": 6, "frac_bits": 10}) == "Q6.10"
    assert show_value([64, 32, 10]) == "[64,32,10]" and show_value(True) == "true"


def test_the_shipped_example_space_is_valid_against_digits():
    s = load_space("examples/explore/digits-formats.toml", BASE)
    assert len(s) >= 8 and all(p.valid for p in s.points)
    assert {p.cfg.rounding for p in s.points} == {"nearest_even", "stochastic"}


def test_the_config_key_changes_several_sections_together():
    s = parse_space('"config" = [{ formats = { act = { frac_bits = 4 } }, lut = { exp_entries_log2 = 7 } },'
                    ' { formats = { act = { frac_bits = 4 } } }]\n"training.rounding" = ["stochastic"]', BASE)
    good, bad = s.points
    assert str(good.cfg.act) == "Q6.4" and good.cfg.exp_entries_log2 == 7 and good.cfg.rounding == "stochastic"
    assert not bad.valid and "lut.exp_entries_log2" in bad.error  # the default 256 entries need 8 act codes
    with pytest.raises(SpaceError, match="key 'config' sets 'training.rounding', which key 'training.rounding'"):
        parse_space('"config" = [{ training = { rounding = "stochastic" } }]\n"training.rounding" = ["x"]', BASE)
    with pytest.raises(SpaceError, match="key 'config': value .*unknown key 'format'"):
        parse_space('"config" = [{ format = {} }]', BASE)
