"""The checkpoint cache and trained_model: hit, miss, corruption, concurrent writers, user
checkpoints and device selection."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from benchtool.contracts.data import DataBundle, DatasetInfo
from benchtool.contracts.model import ModelSpec, TrainRecipe
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.data.toy import ToyRegression
from benchtool.errors import UsageError
from benchtool.models import CheckpointWarning, default_cache_dir, trained_model
from benchtool.models import checkpoints as checkpoints_module
from benchtool.models import trained as trained_module
from benchtool.models.checkpoints import CheckpointCache, cache_key
from benchtool.models.zoo import LeNetSpec, MlpSpec

ROOT = Path("/nonexistent-benchtool-data-root")


class TinyMlp(MlpSpec):
    """The zoo MLP with a one-epoch recipe, so a cache miss costs a fraction of a second."""

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return TrainRecipe(epochs=1, batch_size=128, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset(Digits(), root=ROOT, seed=0)


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times trained_model really trains."""
    calls: list[int] = []
    real_train = trained_module.train

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trained_module, "train", counting)
    return calls


def _get(bundle: DataBundle, cache: Path, seed: int = 0, spec: object = None, **kwargs: object) -> torch.nn.Module:
    return trained_model(spec or TinyMlp(), bundle, seed=seed, budget="small", device=torch.device("cpu"),
                         cache_dir=cache, progress=False, **kwargs)


def _path(bundle: DataBundle, cache: Path, seed: int = 0) -> Path:
    spec = TinyMlp()
    return CheckpointCache(cache).path_for(cache_key(spec.name, bundle.info, seed, spec.recipe(bundle.info, "small")))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_miss_trains_and_writes_then_hit_loads_without_training(
    digits: DataBundle, tmp_path: Path, trainings: list[int]
) -> None:
    first = _get(digits, tmp_path)
    assert trainings == [1] and _path(digits, tmp_path).is_file()
    assert not first.training and next(first.parameters()).device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hit warns about nothing
        second = _get(digits, tmp_path)
    assert trainings == [1] and _same_weights(first, second) and not second.training
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if not p.name.endswith(".lock")] == [
        _path(digits, tmp_path).name
    ]  # no temporary file left behind


def test_key_covers_seed_recipe_dataset_and_version(digits: DataBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = CheckpointCache(Path("/c"))
    recipe = TrainRecipe(epochs=1)
    base = cache.path_for(cache_key("mlp", digits.info, 0, recipe))
    assert base.name.startswith("mlp-digits-seed0-") and base.suffix == ".pt"
    others = {
        cache.path_for(cache_key("mlp", digits.info, 1, recipe)),
        cache.path_for(cache_key("mlp", digits.info, 0, TrainRecipe(epochs=2))),
        cache.path_for(cache_key("lenet", digits.info, 0, recipe)),
        cache.path_for(cache_key("mlp", ToyRegression().info(), 0, recipe)),
    }
    monkeypatch.setattr(checkpoints_module, "__version__", "9.9.9")
    others.add(cache.path_for(cache_key("mlp", digits.info, 0, recipe)))
    assert base not in others and len(others) == 5


def _evil_pickle(marker: Path) -> bytes:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(marker),))  # type: ignore[return-value]

    return pickle.dumps({"state_dict": Evil()}, protocol=2)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickle", "other-key", "wrong-shapes", "not-tensors"])
def test_a_damaged_checkpoint_is_reported_in_one_line_and_retrained(
    digits: DataBundle, tmp_path: Path, trainings: list[int], damage: str
) -> None:
    reference = _get(digits, tmp_path)
    path = _path(digits, tmp_path)
    good = path.read_bytes()
    key = json.dumps(cache_key("mlp", digits.info, 0, TinyMlp().recipe(digits.info, "small")), sort_keys=True)
    marker = tmp_path / "pwned"
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(1000))
    elif damage == "pickle":
        path.write_bytes(_evil_pickle(marker))
    elif damage == "other-key":
        _get(digits, tmp_path, seed=1)
        path.write_bytes(_path(digits, tmp_path, seed=1).read_bytes())
    elif damage == "wrong-shapes":
        torch.save({"format": 1, "key": key, "state_dict": {"3.weight": torch.zeros(2, 2)}}, path)
    else:
        torch.save({"format": 1, "key": key, "state_dict": {"3.weight": [1, 2]}}, path)
    trainings.clear()
    with pytest.warns(CheckpointWarning) as caught:
        again = _get(digits, tmp_path)
    messages = [str(w.message) for w in caught if w.category is CheckpointWarning]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert str(path) in messages[0] and messages[0].endswith("retraining")
    assert trainings == [1] and _same_weights(reference, again)  # same seed, same model
    assert not marker.exists()  # nothing was unpickled
    assert path.read_bytes() != b"" and _get(digits, tmp_path) is not None and trainings == [1]  # repaired


def test_an_unusable_cache_directory_warns_and_still_trains(
    digits: DataBundle, tmp_path: Path, trainings: list[int]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(CheckpointWarning, match="not usable.*training without it"):
        model = _get(digits, blocker)
    assert trainings == [1] and not model.training


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    digits: DataBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _get(digits, tmp_path)
    path = _path(digits, tmp_path)
    before = path.read_bytes()

    def failing_save(obj: object, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints_module.torch, "save", failing_save)
    key = cache_key("mlp", digits.info, 0, TinyMlp().recipe(digits.info, "small"))
    with pytest.warns(CheckpointWarning, match="could not write checkpoint.*No space left"):
        CheckpointCache(tmp_path).save(path, key, model)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.name + ".lock"])


CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    from benchtool.contracts.data import DataBundle, DatasetInfo, Split
    from benchtool.contracts.model import TrainRecipe
    from benchtool.models import trained as trained_module
    from benchtool.models.zoo import MlpSpec

    class TinyMlp(MlpSpec):
        def recipe(self, info, budget):
            return TrainRecipe(epochs=1, batch_size=128, lr=3e-3)

    calls = []
    real_train = trained_module.train
    def slow_train(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)  # widen the window in which the other process could interfere
        return real_train(*args, **kwargs)
    trained_module.train = slow_train

    generator = torch.Generator().manual_seed(0)
    split = Split(torch.rand(256, 1, 8, 8, generator=generator), torch.randint(0, 10, (256,), generator=generator))
    bundle = DataBundle(DatasetInfo("noise-digits", "classification", (1, 8, 8), 10, (0.0, 1.0)), split, split, split)
    Path(sys.argv[2]).touch()  # ready
    while len(list(Path(sys.argv[2]).parent.glob("ready-*"))) < 2:
        time.sleep(0.01)
    model = trained_module.trained_model(TinyMlp(), bundle, seed=0, budget="small", device="cpu",
                                         cache_dir=Path(sys.argv[1]), progress=False)
    checksum = float(sum(v.double().sum() for v in model.state_dict().values()))
    print(json.dumps({"trained": len(calls), "checksum": checksum}))
    """
)


@pytest.mark.skipif(checkpoints_module.fcntl is None, reason="no fcntl file locks on this OS")
def test_two_processes_asking_for_one_key_train_it_once(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(CONCURRENT_SCRIPT)
    cache = tmp_path / "cache"
    workers = [
        subprocess.Popen([sys.executable, str(script), str(cache), str(tmp_path / f"ready-{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["trained"] for r in results) == [0, 1]
    assert results[0]["checksum"] == results[1]["checksum"]
    files = [p for p in (cache / "checkpoints").iterdir() if p.suffix == ".pt"]
    assert len(files) == 1  # the file both saw is whole and valid
    content = torch.load(files[0], weights_only=True)
    assert float(sum(v.double().sum() for v in content["state_dict"].values())) == results[0]["checksum"]


# --- user checkpoints (--bt-checkpoint) ----------------------------------------------


def test_a_user_checkpoint_replaces_training(digits: DataBundle, tmp_path: Path, trainings: list[int]) -> None:
    source = _get(digits, tmp_path / "cache")
    trainings.clear()
    plain = tmp_path / "plain.pt"
    torch.save(source.state_dict(), plain)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, wrapped)
    for path in (plain, wrapped):
        loaded = _get(digits, tmp_path / "unused", seed=7, checkpoint=path)
        assert _same_weights(source, loaded) and not loaded.training
    assert trainings == [] and not (tmp_path / "unused").exists()


def test_a_user_checkpoint_that_does_not_fit_is_a_clear_error(digits: DataBundle, tmp_path: Path) -> None:
    lenet = LeNetSpec().build(digits.info)
    path = tmp_path / "lenet.pt"
    torch.save(lenet.state_dict(), path)
    with pytest.raises(UsageError) as error:
        _get(digits, tmp_path, checkpoint=path)
    message = str(error.value)
    assert f"--bt-checkpoint {path} does not fit model 'mlp' built for dataset 'digits'" in message
    assert "missing keys 2.bias, 2.weight" in message and "unexpected keys classifier.2.bias" in message
    assert "(+5 more)" in message  # long key lists are cut
    with pytest.raises(UsageError, match="no such file"):
        _get(digits, tmp_path, checkpoint=tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="not loadable with torch.load"):
        _get(digits, tmp_path, checkpoint=junk)
    torch.save({"weights": [1, 2]}, junk)
    with pytest.raises(UsageError, match="expected a state_dict"):
        _get(digits, tmp_path, checkpoint=junk)


# --- devices, defaults, support --------------------------------------------------------


def test_unsupported_model_dataset_pair_is_a_usage_error(tmp_path: Path) -> None:
    toy = load_dataset(ToyRegression(), root=ROOT, seed=0)
    with pytest.raises(UsageError, match="model 'lenet' cannot be built for dataset 'toy-regression'"):
        _get(toy, tmp_path, spec=LeNetSpec())


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHTOOL_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("BENCHTOOL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "benchtool"


def test_cache_dir_none_uses_the_default(digits: DataBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHTOOL_CACHE", str(tmp_path))
    trained_model(TinyMlp(), digits, seed=0, budget="small", device="cpu", cache_dir=None, progress=False)
    assert _path(digits, tmp_path).is_file()


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"))],
)
def test_the_model_comes_back_on_the_selected_device(
    digits: DataBundle, tmp_path: Path, device: str, trainings: list[int]
) -> None:
    model = trained_model(LeNetSpec(), digits, seed=0, budget="small", device=torch.device(device),
                          cache_dir=tmp_path, progress=False)
    assert {p.device.type for p in model.parameters()} == {device}
    x = digits.test.x[:8].to(device)
    assert model(x).device.type == device
    # the cached weights are stored on the CPU, so they load onto any device
    on_cpu = trained_model(LeNetSpec(), digits, seed=0, budget="small", device="cpu", cache_dir=tmp_path,
                           progress=False)
    assert trainings == [1] and next(on_cpu.parameters()).device.type == "cpu"


class PluginLeNet(ModelSpec):
    """A third-party convolutional spec that does not opt in to channels-last weights."""

    name = "plugin-lenet"

    def build(self, info: DatasetInfo) -> torch.nn.Module:
        return LeNetSpec().build(info)

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return TrainRecipe(epochs=1, batch_size=128, lr=3e-3)


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim == 4]


def test_zoo_convolutions_run_channels_last_on_a_cpu_and_predict_the_same(digits: DataBundle, tmp_path: Path) -> None:
    zoo = trained_model(LeNetSpec(), digits, seed=0, budget="small", device="cpu", cache_dir=tmp_path, progress=False)
    weights = _conv_weights(zoo)
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert not weights[1].is_contiguous()  # (16, 6, 5, 5); the first conv's one input channel fits both layouts
    plain = LeNetSpec().build(digits.info).eval()  # the same weights in the default layout
    plain.load_state_dict({k: v.contiguous() for k, v in zoo.state_dict().items()})
    assert all(w.is_contiguous() for w in _conv_weights(plain))
    x = digits.test.x[:64]
    with torch.no_grad():
        torch.testing.assert_close(zoo(x), plain(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(zoo(x).argmax(1), plain(x).argmax(1))
    # the checkpoint holds the default layout: the cache file is the same whatever runs it
    stored = torch.load(next((tmp_path / "checkpoints").glob("lenet-*.pt")), map_location="cpu", weights_only=True)
    assert all(v.is_contiguous() for v in stored["state_dict"].values())


def test_a_plugin_spec_keeps_its_layout_unless_it_opts_in(digits: DataBundle, tmp_path: Path) -> None:
    model = trained_model(PluginLeNet(), digits, seed=0, budget="small", device="cpu", cache_dir=tmp_path, progress=False)
    assert all(w.is_contiguous() for w in _conv_weights(model))
