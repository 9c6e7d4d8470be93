"""Ship the dbt marts to ad and marketing platforms and record every delivery.

The package is deliberately thin: the marts already hold what goes on the wire
(normalised, hashed, windowed in SQL). The shipper reads a mart, maps columns
to the platform's field names, batches, sends, and writes the outcome of every
row to the delivery ledger so a rerun never sends an event twice and never
loses one.
"""

__version__ = "0.1.0"
