"""The catalog's row check: Eloqua's spelling for every row, however often a pair repeats."""

import pytest

from importer.errors import RowError
from importer.preflight import Catalog

TYPES = {"Tradeshow": ["Visited Booth", "Registered"], "Webinar": []}


def test_every_row_of_a_repeated_pair_gets_eloquas_spelling():
    catalog = Catalog(TYPES)
    for _ in range(3):
        payload = {"assetType": "TRADESHOW", "activityType": "visited booth"}
        catalog.check(payload)
        assert payload == {"assetType": "Tradeshow", "activityType": "Visited Booth"}


def test_a_pair_eloqua_does_not_have_is_refused_every_time_it_comes():
    catalog = Catalog(TYPES)
    for _ in range(2):
        with pytest.raises(RowError, match="not set up for the asset type 'Tradeshow'"):
            catalog.check({"assetType": "Tradeshow", "activityType": "Watched"})
    with pytest.raises(RowError, match="types are: Tradeshow, Webinar"):
        catalog.check({"assetType": "Booth", "activityType": "Visited Booth"})


def test_an_asset_type_without_activity_types_and_values_that_are_not_text_are_checked():
    catalog = Catalog(TYPES)
    payload = {"assetType": "webinar", "activityType": "Anything"}
    catalog.check(payload)
    assert payload == {"assetType": "Webinar", "activityType": "Anything"}
    with pytest.raises(RowError, match="assetType 42 is not set up"):
        catalog.check({"assetType": 42, "activityType": "Registered"})
