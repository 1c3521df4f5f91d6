import sys
import typing

import pytest

from decart_nb import DecartNBError, ErrorCode, models


@pytest.mark.parametrize(
    ("name", "fps", "width", "height"),
    [
        ("lucy-2.1", 30, 1280, 720),
        ("lucy-2.5", 30, 1280, 720),
        ("lucy-2.6", 30, 1280, 720),
        ("lucy-vton-3.5", 30, 1280, 720),
        ("lucy-vton-3.6", 30, 1280, 720),
        ("lucy-restyle-2", 30, 1280, 704),
        ("lucy-latest", 30, 1280, 720),
        ("lucy-vton-latest", 30, 1280, 720),
        ("lucy-restyle-latest", 30, 1280, 704),
    ],
)
def test_every_realtime_model_has_its_constraints(name: str, fps: int, width: int, height: int) -> None:
    spec = models.realtime(name)
    assert (spec.name, spec.fps, spec.width, spec.height) == (name, fps, width, height)


@pytest.mark.parametrize("name", ["lucy-9", "", "LUCY-LATEST", None])
def test_unknown_model_is_model_not_found(name: object) -> None:
    with pytest.raises(DecartNBError) as info:
        models.realtime(name)  # type: ignore[arg-type]
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert f"Model {name} not found" in info.value.message


def test_the_catalogue_comes_from_the_installed_sdk_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("decart")
    from decart.models import models as sdk_models

    from decart_nb.models import _EMBEDDED, _catalogue

    _catalogue.cache_clear()
    try:
        assert models.catalogue_source().startswith("decart 0.2")
        assert models.realtime("lucy-2.5").speeds == ("fast",) and models.realtime("lucy-2.1").speeds == ()
        assert models.realtime("lucy-vton-3.6").kind == "vton"
        for name in models.realtime_names():
            ours, sdk = models.realtime(name), sdk_models.realtime(name)  # type: ignore[arg-type]
            assert (ours.fps, ours.width, ours.height) == (sdk.fps, sdk.width, sdk.height)
        assert _catalogue()[0] == _EMBEDDED  # the embedded copy matches decart 0.2.4's table
        # A model the SDK adds shows up without a decart_nb release.
        sdk_module = sys.modules["decart.models"]  # (the package's `models` attribute is the Models object)
        monkeypatch.setattr(sdk_module, "RealTimeModels", typing.Literal["lucy-2.1", "lucy-9"])
        newer = sdk_models.realtime("lucy-2.1").model_copy(update={"name": "lucy-9"})
        monkeypatch.setitem(sdk_module._MODELS["realtime"], "lucy-9", newer)
        _catalogue.cache_clear()
        assert models.realtime_names() == ["lucy-2.1", "lucy-9"]
    finally:
        _catalogue.cache_clear()


def test_without_the_sdk_the_embedded_table_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    from decart_nb.models import _catalogue

    monkeypatch.setitem(sys.modules, "decart", None)  # import decart -> ImportError
    _catalogue.cache_clear()
    try:
        assert models.catalogue_source() == "embedded"
        assert models.realtime("lucy-restyle-2").height == 704 and len(models.realtime_names()) == 9
    finally:
        _catalogue.cache_clear()
