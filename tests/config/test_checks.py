"""validate: the whole composed config before any work (the relations and names it adds to the
schema and the node checks)."""

import pytest

from segexp.config.checks import check_palette, validate
from segexp.errors import SegexpError
from tests.conftest import TINY, compose_config


def test_an_old_key_in_a_config_file_is_named_by_validate():
    cfg = compose_config([*TINY, "+model.depth=3"])  # as a config file of the user's adds it
    with pytest.raises(SegexpError, match=r"^model\.depth is now model\.net\.depth \(segexp "):
        validate(cfg)


@pytest.mark.parametrize(
    "palette, message",
    [
        (
            "[[0,0,0],[255,0],[0,255,0],[0,0,255],[9,9,9]]",
            "dataset.palette[1]=[255, 0]: give [r, g, b]",
        ),
        ("[[0,0,0],[255,0,256],[0,255,0],[0,0,255],[9,9,9]]", "dataset.palette[1]=[255, 0, 256]"),
        ("[[0,0,0],red,[0,255,0],[0,0,255],[9,9,9]]", "dataset.palette[1]=red"),
        ("[[0,0,0],[1,2,3]]", "dataset.palette has 2 colours but dataset.num_classes=5"),
    ],
)
def test_a_wrong_palette_entry_is_named(palette, message):
    with pytest.raises(SegexpError) as err:
        validate(compose_config([*TINY, f"dataset.palette={palette}"]))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert check_palette([[1, 2, 3], (4, 5, 6)], 2) == [[1, 2, 3], [4, 5, 6]]
