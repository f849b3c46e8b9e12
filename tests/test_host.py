"""Plugin discovery, blocking, registration errors: the host's contract."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from benchtool import __version__
from benchtool.errors import ContractViolation, UndeclaredHyperParameter, UsageError
from benchtool.host import PluginArgs, describe_exception, load_host, parse_plugin_args
from benchtool.registry import KINDS, PluginSource, Registrar, Registry

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


def failures(host) -> dict[str, list[str]]:  # noqa: ANN001
    """plugin name -> its failure lines."""
    out: dict[str, list[str]] = {}
    for failure in host.failures:
        out.setdefault(failure.name, []).append(str(failure))
    return out


def test_duplicate_name_fails_the_second_plugin_naming_both_distributions() -> None:
    host = load_host(modules=["duplicate_fgsm"])
    assert failures(host) == {"duplicate_fgsm": [
        "plugin 'duplicate_fgsm' broke rule 'unique-name': attack name 'fgsm' is already registered by plugin 'fgsm' "
        f"(distribution benchtool {__version__}); expected a name no other plugin registers [module given with -p; "
        "not loaded, block it with -p no:duplicate_fgsm]"]}
    assert host.registry.get("attacks", "fgsm").source.distribution == "benchtool"
    assert "duplicate_fgsm" not in host.sources


def test_broken_registrations_are_reported_at_once_and_others_still_load() -> None:
    host = load_host(modules=["bad_registration", "abstract_registration", "good_local"])
    found = failures(host)
    assert [line.split(" [")[0] for line in found["bad_registration"]] == [
        "plugin 'bad_registration' broke rule 'derives-from-base': attack 'not-an-attack' is NotAnAttack; expected a "
        "subclass or instance of benchtool.contracts.attack.Attack",
        "plugin 'bad_registration' failed to register: benchtool_register_estimators raised RuntimeError: estimator "
        f"registry exploded ({ZOO / 'bad_registration.py'}:21)",
    ]
    assert found["abstract_registration"][0].startswith(
        "plugin 'abstract_registration' broke rule 'implements-abstract': attack 'incomplete' "
        "(abstract_registration.Incomplete) does not implement ['perturb']")
    assert "local-noise" in host.registry.names("attacks")
    assert "fgsm" in host.registry.names("attacks")


def test_a_failed_plugin_registers_nothing_and_its_other_hooks_never_run(tmp_path: Path) -> None:
    (tmp_path / "half_broken.py").write_text(
        "from benchtool import hookimpl\n"
        "from benchtool_attacks.fgsm import FGSM\n"
        "class Good(FGSM):\n    name = 'half-good'\n"
        "class NoNorm(FGSM):\n    name = 'half-no-norm'\n    norm = 'l3'\n"
        "@hookimpl\ndef benchtool_register_attacks(registry):\n    registry.add(Good)\n    registry.add(NoNorm)\n"
        "@hookimpl\ndef benchtool_configure(config, host):\n    raise AssertionError('unloaded plugins get no call')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        host = load_host(modules=["half_broken"])
    finally:
        sys.path.remove(str(tmp_path))
    assert [f.rule for f in host.failures] == ["declares-norm"]
    assert "declares norm = 'l3'; expected one of 'linf', 'l2'" in str(host.failures[0])
    assert "half-good" not in host.registry.names("attacks")
    assert host.pm.get_plugin("half_broken") is None
    assert all(impl.plugin_name != "half_broken" for impl in host.hook.benchtool_configure.get_hookimpls())


def test_misspelt_hook_fails_that_plugin_with_the_closest_hook() -> None:
    host = load_host(modules=["misspelt_hook", "good_local"])
    assert [f.summary for f in host.failures] == [
        "plugin 'misspelt_hook' failed to register: unknown hook 'benchtool_register_atacks'; did you mean "
        "'benchtool_register_attacks'?"]
    assert "local-noise" in host.registry.names("attacks")


def test_hook_arguments_and_undecorated_hooks_are_checked(tmp_path: Path) -> None:
    (tmp_path / "hook_mistakes.py").write_text(
        "from benchtool import hookimpl\n"
        "@hookimpl\ndef benchtool_register_attacks(registrar):\n    pass\n"
        "def benchtool_register_estimators(registry):\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        host = load_host(modules=["hook_mistakes"])
    finally:
        sys.path.remove(str(tmp_path))
    assert sorted(f.error for f in host.failures) == [
        "function 'benchtool_register_estimators' is not marked @hookimpl, so benchtool would never call it; "
        "expected it decorated with @benchtool.hookimpl",
        "hook 'benchtool_register_attacks' takes argument(s) ['registrar'] that benchtool does not pass; expected "
        "benchtool_register_attacks(registry) or a subset of those arguments",
    ]


def test_unimportable_local_module_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="^-p no_such_plugin_module: no module named 'no_such_plugin_module' in the "
                                         "current directory"):
        load_host(modules=["no_such_plugin_module"])


def test_one_parser_for_p_values() -> None:
    assert parse_plugin_args(["a", "no:b", "pkg.c", "no:b", "a"]) == PluginArgs(("a", "pkg.c"), ("b",))
    with pytest.raises(UsageError, match=r"^-p 'no:' names no plugin; expected -p no:NAME"):
        parse_plugin_args(["no:"])
    with pytest.raises(UsageError, match=r"^-p 'x.py/' is not a module name"):
        parse_plugin_args(["x.py/"])


def test_blocking_an_unknown_name_is_a_warning_listing_the_valid_ones() -> None:
    host = load_host(blocked=["fgsmm", "benchtool_attacks.pgd"])
    assert host.blocked == [] and "fgsm" in host.registry.names("attacks")
    first, second = sorted(host.warnings)
    assert first.startswith("-p no:benchtool_attacks.pgd matches no plugin, so nothing was blocked; expected a "
                            "plugin name, one of: ")
    assert "cw-l2, datasets," in first
    assert first.endswith("('benchtool_attacks.pgd' is the module of plugin 'pgd': block it with -p no:pgd)")
    assert second.endswith("(did you mean 'fgsm'?)")


def test_a_missing_name_says_why() -> None:
    host = load_host(modules=["duplicate_fgsm", "abstract_registration"], blocked=["pgd"])
    assert str(host.unknown_name_error("attacks", "pgd")) == (
        "attack 'pgd' is blocked: plugin 'pgd' was blocked with -p no:pgd; drop -p no:pgd to run it")
    assert str(host.unknown_name_error("attacks", "incomplete", "--bt-attacks")).startswith(
        "attack in --bt-attacks 'incomplete' is not loaded: plugin 'abstract_registration' broke rule "
        "'implements-abstract'")
    unknown = str(host.unknown_name_error("attacks", "nope"))
    assert unknown.startswith("unknown attack 'nope'; expected one of: ") and "cw-l2, deepfool" in unknown


def registrar(kind: str = "attacks") -> tuple[Registry, Registrar]:
    registry = Registry()
    return registry, Registrar(registry, KINDS[kind], PluginSource("zoo", "zoo", "local", "-"))


def test_add_takes_the_name_from_the_class_and_the_old_named_form_warns_and_checks_it() -> None:
    from benchtool_attacks.fgsm import FGSM

    registry, add = registrar()
    add.add(FGSM, description="given")
    assert registry.names("attacks") == ["fgsm"] and registry.get("attacks", "fgsm").description == "given"
    with pytest.warns(DeprecationWarning, match=r"registry.add\('fgsm', FGSM\): pass the class alone; its name "
                                                r"attribute names it") as caught:
        add.add("fgsm", FGSM)
    assert caught[0].filename == __file__  # the warning points at the plugin's call
    assert [v.rule for v in add.problems] == ["unique-name"]
    registry, add = registrar()
    with pytest.warns(DeprecationWarning):
        add.add("other", FGSM)
    assert registry.names("attacks") == []
    assert str(add.problems[0]) == (
        "plugin 'zoo' broke rule 'name-matches': attack 'other' (benchtool_attacks.fgsm.FGSM) is registered as "
        "'other' but declares name = 'fgsm'; expected the same name (registry.add(FGSM) takes it from the class)")


def test_registration_checks_what_each_contract_requires() -> None:
    from benchtool_attacks.pgd import PGD
    from benchtool_limits.targets import Sine

    class Overrides(PGD):
        name = "overrides"
        budget_overrides = {"small": {"stepz": 3}, "huge": {}}

    class NoDomain(Sine):
        name = "no-domain"
        domain = ((1.0, -1.0),)

    _, add = registrar()
    add.add(Overrides)
    assert [v.rule for v in add.problems] == ["declares-budget-overrides"]
    assert "sets undeclared hyper-parameter(s) ['stepz']" in add.problems[0].detail
    _, add = registrar("target_functions")
    add.add(NoDomain)
    assert [(v.rule, v.detail.split(") ", 1)[1]) for v in add.problems] == [
        ("declares-domain", "declares domain = ((1.0, -1.0),); expected ((low, high), ...) with finite low < high")]


def test_reading_an_undeclared_hyperparameter_names_the_plugin_and_what_it_declares() -> None:
    from benchtool_attacks.pgd import PGD

    params = PGD().params
    with pytest.raises(UndeclaredHyperParameter) as info:
        params["stepz"]
    assert isinstance(info.value, (KeyError, ContractViolation))
    assert str(info.value).startswith(
        "plugin 'pgd' broke rule 'declared-hyperparameter': read hyper-parameter 'stepz', which it does not declare; "
        "declared: ")
    assert params.get("stepz", 7) == 7 and "stepz" not in params
    again = pickle.loads(pickle.dumps(params))
    assert again == params and again.plugin == "pgd"


def test_syntax_errors_are_one_line_with_file_and_line() -> None:
    try:
        compile("def f(:\n", "plugin.py", "exec")
    except SyntaxError as exc:
        assert describe_exception(exc) == f"plugin.py:1: SyntaxError: {exc.msg}"


def test_unknown_name_lists_the_valid_ones() -> None:
    host = load_host()
    with pytest.raises(UsageError, match="unknown attack 'nope'; expected one of: .*fgsm"):
        host.registry.get("attacks", "nope")


def test_the_host_is_what_the_configure_hook_promises_and_the_markers_have_one_home() -> None:
    """hookspecs types ``benchtool_configure``'s host as the leaf interface ``HostView`` (so the
    hook contract does not import the host that loads it); the loaded host implements it."""
    import benchtool
    from benchtool import hookspecs, plugin_api

    host = load_host(use_entry_points=False)
    assert isinstance(host, plugin_api.HostView)
    assert host.run_metadata(None)["benchtool"] == __version__
    assert benchtool.hookimpl is hookspecs.hookimpl is plugin_api.hookimpl
    assert benchtool.hookspec is hookspecs.hookspec is plugin_api.hookspec
    assert not isinstance(object(), plugin_api.HostView)
