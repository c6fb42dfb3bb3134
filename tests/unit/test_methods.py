"""The method registry: one spec per method, collisions are errors, selection by spec."""

from __future__ import annotations

import pytest
import torch

from crane.errors import ConfigError
from crane.methods import (
    MethodSpec,
    get_method,
    method_names,
    parse_methods,
    register_method,
    unregister_method,
)
from crane.scoring import Budget
from crane.scoring.base import Scores
from crane.stats import LanguageStats, Stats


def test_builtin_methods_are_registered_once_with_their_facts() -> None:
    assert method_names() == [
        "crane", "gradxact", "lape", "kojima", "plnd", "actmean", "optimise", "random"
    ]
    assert method_names("relevance") == ["crane", "gradxact"]
    assert get_method("crane").relevance == "attnlrp" and get_method("crane").verifiable
    assert get_method("lape").site_for("down_in") == "act"
    assert get_method("kojima").site_for("down_in") == "down_in"
    assert [m for m in method_names() if get_method(m).has_own_size] == ["lape", "plnd"]
    assert parse_methods("all") == [m for m in method_names() if m != "optimise"]  # slow
    assert parse_methods(" LAPE, crane,lape") == ["lape", "crane"]


def test_collisions_and_unknown_names_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_method(MethodSpec("lape", "activation", "x:y", "a second lape"))
    assert get_method("lape").scorer == "crane.scoring.lape:lape_scores"  # not overwritten
    with pytest.raises(ConfigError, match="Unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ConfigError, match="Unknown method"):
        parse_methods("crane,nope")
    with pytest.raises(ConfigError, match="relevance method"):
        MethodSpec("bad", "relevance", "x:y", "no relevance method named")
    with pytest.raises(ConfigError, match="cannot name"):
        register_method(MethodSpec("all", "activation", "x:y", "reserved"))


def _by_mean(stats: Stats) -> Scores:
    """A toy scorer: the language's mean activation minus the others' largest."""
    means = {
        lang: stats[lang].mean("site_sum", "n_tokens").double() for lang in stats.language_codes
    }
    values = {
        lang: m - torch.stack([o for e, o in means.items() if e != lang]).max(0).values
        for lang, m in means.items()
    }
    return Scores(values, "bymean")


def test_a_new_method_is_one_registry_entry() -> None:
    spec = register_method(MethodSpec("bymean", "activation", _by_mean, "toy"))
    try:
        stats = Stats(
            {
                lang: LanguageStats(
                    {"site_sum": torch.tensor([[v, 0.0, -v]], dtype=torch.float64)},
                    {"n_tokens": 1},
                )
                for lang, v in (("en", 5.0), ("zh", -5.0))
            }
        )
        chosen = spec.select(stats, budget=Budget(count=1), site="down_in")
        assert chosen.neurons == {"en": {0: [0]}, "zh": {0: [2]}}
        assert "bymean" in parse_methods("all")
    finally:
        unregister_method("bymean")
    assert "bymean" not in method_names()


def test_installed_plugins_register_methods(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An installed package's ``crane.methods`` entry point is loaded on first use."""
    import importlib.metadata

    import crane.methods as registry

    def plugin() -> None:
        register_method(MethodSpec("fromplugin", "activation", _by_mean, "a plug-in method"))

    class Point:
        name, value = "mine", "my_pkg:plugin"

        def load(self):  # type: ignore[no-untyped-def]
            return plugin

    def points(group: str):  # type: ignore[no-untyped-def]
        return [Point()] if group == registry.PLUGIN_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    try:
        assert parse_methods("crane,fromplugin") == ["crane", "fromplugin"]
        assert get_method("fromplugin").description == "a plug-in method"
    finally:
        unregister_method("fromplugin")

    class Broken(Point):
        def load(self):  # type: ignore[no-untyped-def]
            raise ImportError("no module named my_pkg")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Broken()])
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    with pytest.raises(ConfigError, match="plug-in 'mine'.*failed to load"):
        method_names()
