"""The spec syntax and parameter validation shared by every plugin kind."""

from __future__ import annotations

import pytest

from probreg.errors import UsageError
from probreg.params import Param, format_spec, parse_spec, resolve_options

PARAMS = (
    Param("components", "int", 20, "mixture components", minimum=1),
    Param("rate", "float", 0.5, "a rate", minimum=0, maximum=1),
    Param("hidden", "ints", (64, 64), "sizes", minimum=1),
    Param("kind", "str", "a", "a choice", choices=("a", "b")),
    Param("flag", "bool", False, "a switch"),
    Param("columns", "strs", None, "column names"),
)


def test_parse_spec_splits_name_and_options():
    assert parse_spec("mdn") == ("mdn", {})
    assert parse_spec("mdn:components=3,hidden=8+8") == (
        "mdn",
        {"components": "3", "hidden": "8+8"},
    )
    assert parse_spec(" csv:path=a=b.csv ") == ("csv", {"path": "a=b.csv"})


def test_a_quoted_value_may_hold_commas_and_the_other_quote():
    assert parse_spec('csv:path="a,b.csv",x=t') == ("csv", {"path": "a,b.csv", "x": "t"})
    assert parse_spec("csv:path='it\"s,1.csv' ,x=t") == ("csv", {"path": 'it"s,1.csv', "x": "t"})
    # A quote inside an unquoted value is an ordinary character.
    assert parse_spec("csv:path=it's.csv,x=t") == ("csv", {"path": "it's.csv", "x": "t"})


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("mdn:", "nothing after ':'"),
        ("mdn:components", "expected key=value"),
        (":components=3", "the name is missing"),
        ("", "malformed"),
        ("mdn:components=3,components=4", "given twice"),
        ("mdn:=3", "expected key=value"),
        ("csv:path=a,b.csv", 'quote a value that holds a comma: path="a,b.csv"'),
        ('csv:path="a,b.csv,x=t', "quote is not closed"),
        ('csv:path="a,b".csv,x=t', "text after the closing quote"),
    ],
)
def test_malformed_specs_are_refused(spec, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_spec(spec, "head")


def test_values_are_typed_and_defaults_filled():
    values = resolve_options(
        PARAMS, {"components": "3", "rate": "0.25", "hidden": "8+16", "flag": "yes"}, "head 'x'"
    )
    assert values == {
        "components": 3,
        "rate": 0.25,
        "hidden": (8, 16),
        "kind": "a",
        "flag": True,
        "columns": None,
    }
    # Python values from the API are checked the same way.
    assert resolve_options(PARAMS, {"hidden": [4, 5], "components": 2}, "x")["hidden"] == (4, 5)


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"components": "0"}, "below the minimum 1"),
        ({"components": "2.5"}, "'2.5' is not an integer"),
        ({"components": "abc"}, "not an integer"),
        ({"components": "1_0"}, "'1_0' is not an integer"),  # Python's int() would take these
        ({"components": "\u0663"}, "is not an integer"),  # an Arabic-Indic three
        ({"components": True}, "not an integer"),
        ({"rate": "nan"}, "not a finite number"),
        ({"rate": "2"}, "above the maximum 1"),
        ({"hidden": "8+"}, "joined with '\\+'"),
        ({"hidden": "8+0"}, "below the minimum"),
        ({"kind": "c"}, "allowed: a, b"),
        ({"flag": "maybe"}, "not true or false"),
        ({"speed": "1"}, "unknown parameter 'speed' for head 'x'; allowed parameters: components"),
    ],
)
def test_invalid_values_name_the_problem_and_what_is_allowed(given, fragment):
    with pytest.raises(UsageError, match=fragment):
        resolve_options(PARAMS, given, "head 'x'")


def test_required_parameters():
    params = (Param("path", "str", None, "a file", required=True),)
    with pytest.raises(UsageError, match="needs parameter 'path'"):
        resolve_options(params, {}, "dataset 'csv'")


def test_format_spec_round_trips_non_defaults():
    options = resolve_options(PARAMS, {"hidden": "8+8", "rate": "0.1"}, "x")
    spec = format_spec("mdn", PARAMS, options)
    assert spec == "mdn:rate=0.1,hidden=8+8"
    _, raw = parse_spec(spec)
    assert resolve_options(PARAMS, raw, "x") == options
    assert format_spec("mdn", PARAMS, resolve_options(PARAMS, {}, "x")) == "mdn"


@pytest.mark.parametrize("value", ["a,b.csv", 'say "a,b"', "'lead", "it's,x", "plain", ' "x"'])
def test_format_spec_quotes_values_that_need_it(value):
    params = (Param("path", "str", None, "a file"), Param("x", "str", "t", "a column"))
    spec = format_spec("csv", params, {"path": value, "x": "u"})
    assert parse_spec(spec) == ("csv", {"path": value, "x": "u"})


@pytest.mark.parametrize("rate", [0.0123456789, 0.1 + 0.2, 1e-300, 0.5])
def test_a_float_round_trips_exactly_through_its_spec(rate):
    """A tuned learning rate written with six digits would train another model."""
    options = resolve_options(PARAMS, {"rate": rate}, "x")
    spec = format_spec("mdn", PARAMS, options)
    assert resolve_options(PARAMS, parse_spec(spec)[1], "x")["rate"] == rate
    assert spec == ("mdn" if rate == 0.5 else f"mdn:rate={rate!r}")  # defaults stay out


def test_integers_without_a_maximum_stop_at_int32():
    params = (Param("n", "int", 10, "rows", minimum=1),)
    assert resolve_options(params, {"n": str(2**31 - 1)}, "x")["n"] == 2**31 - 1
    with pytest.raises(UsageError, match="outside 1 to 2147483647"):  # its own minimum
        resolve_options(params, {"n": "99999999999999999999"}, "dataset 'x'")
    free = (Param("n", "int", 10, "rows"),)
    with pytest.raises(UsageError, match="outside -2147483647 to 2147483647"):
        resolve_options(free, {"n": "-99999999999999999999"}, "dataset 'x'")


def test_a_family_option_is_named_as_the_familys_and_a_misplaced_one_gets_a_hint():
    from probreg import plugins

    with pytest.raises(
        UsageError, match=r"^invalid head 'mdn' \(family 'spline'\) parameter 'bins': 1 is below"
    ):
        plugins.create("head", "mdn:family=spline,bins=1")
    with pytest.raises(UsageError) as caught:
        plugins.create("head", "mdn:family=spline,components=3")
    assert str(caught.value).startswith("unknown parameter 'components' for head 'mdn'")
    assert str(caught.value).endswith(
        "; 'components' is a parameter of families discrete, gaussian_mixture, "
        "gaussian_mixture_full, student_t (pick one with family=NAME)"
    )
    with pytest.raises(UsageError) as caught:  # a name no family has: no hint
        plugins.create("head", "mdn:wings=3")
    assert "is a parameter of" not in str(caught.value)
    with pytest.raises(UsageError) as caught:  # mlp's family is fixed: no family= to pick
        plugins.create("head", "mlp:components=3")
    assert "family=" not in str(caught.value)


def test_a_value_that_needs_quotes_but_holds_both_kinds_is_refused_in_one_line():
    params = (Param("path", "str", None, "a file"),)
    for value in ("""both "a" and 'b', x""", '"it\'s"'):
        with pytest.raises(UsageError, match="cannot be written in a spec: .* holds both kinds"):
            format_spec("csv", params, {"path": value})
