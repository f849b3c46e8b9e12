"""Plugin discovery, blocking, registration errors: the host's contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchtool.errors import DuplicateNameError, PluginError, UsageError
from benchtool.host import load_host

ZOO = Path(__file__).parent / "plugin_zoo"


@pytest.fixture(autouse=True)
def zoo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ZOO))
    monkeypatch.delenv("BENCHTOOL_DISABLE_PLUGINS", raising=False)


def test_builtins_load_through_entry_points() -> None:
    host = load_host()
    fgsm = host.registry.get("attacks", "fgsm")
    assert fgsm.source.name == "fgsm"
    assert fgsm.source.distribution == "benchtool"
    assert fgsm.source.module == "benchtool_attacks.fgsm"
    assert "softmax" in host.registry.names("estimators")
    assert fgsm.description.startswith("One signed-gradient step")


def test_local_module_with_p() -> None:
    host = load_host(modules=["good_local"])
    entry = host.registry.get("attacks", "local-noise")
    assert (entry.source.distribution, entry.source.version) == ("local", "-")


def test_block_by_name_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "fgsm" not in load_host(blocked=["fgsm"]).registry.names("attacks")
    monkeypatch.setenv("BENCHTOOL_DISABLE_PLUGINS", "fgsm, softmax")
    host = load_host()
    assert "fgsm" not in host.registry.names("attacks")
    assert "softmax" not in host.registry.names("estimators")
    assert host.blocked == ["fgsm", "softmax"]


def test_blocked_local_module_is_not_loaded() -> None:
    host = load_host(modules=["good_local"], blocked=["good_local"])
    assert "local-noise" not in host.registry.names("attacks")


def test_duplicate_name_names_both_plugins() -> None:
    with pytest.raises(DuplicateNameError) as info:
        load_host(modules=["duplicate_fgsm"])
    message = str(info.value)
    assert "'fgsm'" in message and "benchtool 0.1.0" in message and "duplicate_fgsm" in message
    assert "local" in message


def test_broken_registrations_are_reported_and_others_still_load() -> None:
    host = load_host(modules=["bad_registration", "abstract_registration", "good_local"])
    messages = " | ".join(str(f) for f in host.failures)
    assert "estimator registry exploded" in messages
    assert "expected a subclass or instance of benchtool.contracts.attack.Attack" in messages
    assert "does not implement ['perturb']" in messages
    assert "local-noise" in host.registry.names("attacks")
    assert "fgsm" in host.registry.names("attacks")


def test_misspelt_hook_is_an_error_at_start() -> None:
    with pytest.raises(PluginError, match="benchtool_register_atacks"):
        load_host(modules=["misspelt_hook"])


def test_unimportable_local_module_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no_such_plugin_module"):
        load_host(modules=["no_such_plugin_module"])


def test_unknown_name_lists_the_valid_ones() -> None:
    host = load_host()
    with pytest.raises(UsageError, match="unknown attack 'nope'; expected one of: .*fgsm"):
        host.registry.get("attacks", "nope")
