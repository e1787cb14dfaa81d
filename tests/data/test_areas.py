"""pointseg.data.areas: the one home of S3DIS area names (folders, room names, user input)."""

from __future__ import annotations

import pytest

from pointseg.data.areas import (
    AREA_DIR_RE,
    area_number,
    area_of_room,
    natural_key,
    normalize_area,
    parse_areas,
)


@pytest.mark.parametrize("given", [5, "5", " 5 ", "Area_5", "area_5", "AREA5", "Area_05"])
def test_area_number_and_name_accept_every_spelling(given):
    assert area_number(given) == 5
    assert normalize_area(given) == "Area_5"


@pytest.mark.parametrize("bad", ["one", "Area_", "Area_5_office", "5a", ""])
def test_bad_areas_name_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="expected a number 1-6 or 'Area_N'"):
        area_number(bad)
    if bad.strip():
        with pytest.raises(ValueError, match=r"bad area .*'Area_<N>'"):
            parse_areas(bad)


def test_parse_areas_lists_and_commas():
    assert parse_areas(None) is None
    assert parse_areas("1,3, Area_2") == [1, 2, 3]
    assert parse_areas([6, "Area_1", "1"]) == [1, 6]
    assert parse_areas("") == []


def test_room_names_and_folders():
    assert area_of_room("Area_5_office_1") == 5
    with pytest.raises(ValueError, match="does not start with 'Area_<N>_'"):
        area_of_room("office_1")
    assert AREA_DIR_RE.match("Area_12") and not AREA_DIR_RE.match("Area_1_x")


def test_natural_key_orders_numbers_by_value():
    names = ["office_10", "office_2", "Area_10", "Area_2", "hallway_1"]
    assert sorted(names, key=natural_key) == [
        "Area_2", "Area_10", "hallway_1", "office_2", "office_10",
    ]  # fmt: skip
