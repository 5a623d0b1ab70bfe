"""The declared-fields layer: one unknown-name check behind every table a user writes."""

from __future__ import annotations

import pytest

from squeezelab.declared import ClaimError
from squeezelab.errors import ConfigError
from squeezelab.fields import refuse_unknown
from squeezelab.models import get_model
from squeezelab.studies.spec import parse_study
from squeezelab.training import from_dict


def test_refuse_unknown_names_each_the_closest_and_all() -> None:
    refuse_unknown(["lr"], ["lr", "epochs"], "x")  # nothing unknown: nothing raised
    with pytest.raises(ConfigError) as err:
        refuse_unknown(["epoch", "zzz"], ["lr", "epochs"], "study.toml [base]")
    assert str(err.value) == (
        "study.toml [base]: unknown fields 'epoch', 'zzz'; did you mean 'epochs'?; "
        "valid fields: lr, epochs"
    )
    with pytest.raises(ClaimError, match=r"^w: unknown key 'k'; valid keys: \(none\)$"):
        refuse_unknown(["k"], [], "w", "key", ClaimError)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: from_dict({"momentom": 0.9}),
         "config: unknown field 'momentom'; did you mean 'momentum'?"),
        (lambda: parse_study("[axis]\nlr = [0.1]", "s"),
         "unknown section 'axis'; did you mean 'axes'?"),
        (lambda: parse_study('[best_of]\nstudy = "grid"\nfeilds = ["lr"]', "s"),
         "[best_of]: unknown key 'feilds'; did you mean 'fields'?"),
        (lambda: parse_study('[best_of]\nstudy = "grid"\nfields = ["lrr"]', "s"),
         "[best_of]: unknown run field 'lrr'; did you mean 'lr'?"),
        (lambda: parse_study('[[claims]]\nid = "c"\nstatement = "s"\ntest = "correlation"\n'
                             'x = "lr"\nmetrc = "val_acc"', "s"),
         "unknown key 'metrc'; did you mean 'metric'?"),
        (lambda: get_model("squeezenet1_0", bypas="simple"),
         "model 'squeezenet1_0': unknown option 'bypas'; did you mean 'bypass'?"),
    ],
)  # fmt: skip
def test_every_table_a_user_writes_gets_the_same_check(make, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make()
    assert message in str(err.value)
