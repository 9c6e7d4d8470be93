"""Destinations delivered as files: CSV writing, transports, and their delivery loop.

csvfile.py      the file format: cells by column type, RFC 4180 quoting, formula
                guard on text, parts split at row / byte limits, gzip
transports.py   where a file goes: SFTP (paramiko, verified host keys) or a local
                directory; both upload under a temporary name and rename
journal.py      the ledger tables `files` and `file_rows`, and how a killed run is settled
destination.py  `FileDestination`, the base class of file destination modules, and the
                file's columns: the mart's, but delivery_key, in mart order
delivery.py     the loop: read, write parts, upload, record (rows are SQL's to decide)
"""

from shipper.files.destination import FileDestination, FileDestinationSettings

__all__ = ["FileDestination", "FileDestinationSettings"]
