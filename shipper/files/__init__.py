"""Destinations delivered as files: CSV writing, transports, and their delivery loop.

csvfile.py      the file format: cells by column type, RFC 4180 quoting, formula
                guard on text, parts split at row / byte limits, gzip
transports.py   where a file goes: SFTP (paramiko, verified host keys) or a local
                directory; both upload under a temporary name and rename
journal.py      the ledger tables `files` and `file_rows` (created with the rest of the
                ledger's schema), and how a killed run is settled
destination.py  `FileDestination`, the base class of file destination modules, bound
                to the loop below, and the file's columns: the mart's, but
                delivery_key, in mart order
delivery.py     the loop: stage the pending rows (shipper.pending), read them in the
                reader's DuckDB, write parts, hand each on (rows are SQL's to decide)
targets.py      what a run settles first: the transport, path settings, the as_of date
                file names carry
parts.py        rows into CSV lines (or refused), lines into parts cut at the limits,
                each part's rows journaled while it is written
upload.py       each closed part: the outbox (dry run), or journal, upload (retried),
                ledger; the files a killed run left, settled first
report.py       `FileReport`: the shared report (shipper.report) with the files listed
"""

from shipper.files.destination import FileDestination, FileDestinationSettings

__all__ = ["FileDestination", "FileDestinationSettings"]
