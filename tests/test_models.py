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
