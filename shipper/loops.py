"""Which delivery loop ships a destination, and checks its mart: one per way rows travel.

A REST destination's rows go through `shipper.delivery` (batched requests), a file
destination's through `shipper.files.delivery` (CSV files). `ship` and
`count_invalid` dispatch on the destination's class (the nearest registered base
class), so the CLI ships and validates any destination without knowing its kind.

The choice lives here, above both loops and both base classes, rather than as a
method of each base class: a class that called its loop would import a module that
names the class back, and the two would import each other.
"""

from __future__ import annotations

from functools import singledispatch

import duckdb

from shipper.delivery import payload_problems, ship_destination
from shipper.destinations.base import Destination
from shipper.destinations.rest import RestDestination
from shipper.files.delivery import file_row_problems, ship_files
from shipper.files.destination import FileDestination
from shipper.outcomes import RunCounts
from shipper.report import DestinationReport, RunContext

__all__ = ["count_invalid", "ship"]


@singledispatch
def ship(destination: Destination, context: RunContext) -> DestinationReport:
    """Ship the destination's pending rows; the report says what happened."""
    raise TypeError(f"{type(destination).__name__} is neither a RestDestination nor a "
                    "FileDestination")


@singledispatch
def count_invalid(destination: Destination, con: duckdb.DuckDBPyConnection,
                  relation: str) -> RunCounts:
    """Count the rows of the mart (`relation`, attached in `con`) its loop could not
    ship, by reason (`ship validate`); MartError when it cannot be shipped at all."""
    raise TypeError(f"{type(destination).__name__} is neither a RestDestination nor a "
                    "FileDestination")


ship.register(RestDestination, ship_destination)
ship.register(FileDestination, ship_files)
count_invalid.register(RestDestination, payload_problems)
count_invalid.register(FileDestination, file_row_problems)
