"""Generate deterministic, realistically messy raw input tables.

    python scripts/generate_raw_data.py --out DIR --customers N --as-of YYYY-MM-DD
        [--seed 42] [--format csv|csv.gz|parquet] [--items-target M]

Writes customers, orders, order_items and stores in the raw input contract
(header row, UTF-8, RFC 4180 quoting and CRLF line ends; parquet holds every
column as a string, empty values as NULL, like a CSV read with all_varchar).

About 0.2% of the rows break the contract on purpose, one kind at a time
(MALFORMED_ORDER_KINDS, CUSTOMER_DEFECT_KINDS), so that every reason the
models set a row aside shows up even in the small demo. Orders are written
in order_id order; their ordered_at is not sorted.

The same arguments always produce the same bytes. Rows are streamed to the
writers, so memory stays flat however many rows are asked for: nothing about
a customer is stored, because the attributes orders need (city, home store)
are a pure hash of the customer's index.

Without --items-target each customer places about ORDERS_PER_CUSTOMER orders;
with it, orders are generated until the item count reaches M (the last order
is finished, so a few more items may be written).

Only the standard library is needed; pyarrow is imported for parquet only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import gzip
import hashlib
import io
import math
import os
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from random import Random
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COLUMNS = {
    "customers": (
        "customer_id", "email", "phone", "first_name", "last_name", "birth_date", "gender",
        "street", "city", "state", "postal_code", "country", "marketing_consent", "updated_at",
    ),
    "orders": (
        "order_id", "customer_id", "ordered_at", "store_id", "channel", "currency", "status",
    ),
    "order_items": (
        "order_id", "line_number", "product_id", "product_name", "category", "brand",
        "quantity", "unit_price", "line_total",
    ),
    "stores": ("store_id", "name", "city", "state", "postal_code", "country"),
}
FORMATS = ("csv", "csv.gz", "parquet")

ORDERS_PER_CUSTOMER = 2.2
HISTORY_DAYS = 400
RECENT_DAYS = 30
# Share of orders drawn from the recent window on top of the uniform spread,
# solved so that ~25% of all orders land in the last 30 days:
# p + (1 - p) * 30 / 400 = 0.25.
RECENT_EXTRA_SHARE = (0.25 - RECENT_DAYS / HISTORY_DAYS) / (1 - RECENT_DAYS / HISTORY_DAYS)
# One order in MALFORMED_EVERY is deliberately broken, cycling through the
# kinds below so that every kind shows up even in the small demo (0.2% of
# orders). Each kind is one reason int_rows_set_aside gives.
MALFORMED_EVERY = 500
MALFORMED_ORDER_KINDS = (
    "empty_order_id",  # order row without its id (and so without items)
    "bad_timestamp",  # ordered_at nobody can parse
    "bad_currency",  # XXX (ISO's "no currency") or US$
    "negative_completed",  # completed, yet every line is negative
    "orphan_items",  # items whose order row is missing
    "future_dated",  # the till's year typed ten years ahead
    "unknown_customer",  # customer_id that is in no customers row
    "completed_without_items",  # completed order with no item lines
    "unreadable_item_line",  # an extra item line whose quantity is not a number
    "duplicate_order_id",  # the same order_id twice, with different statuses
)
# Returns among completed orders: ~1% fully (net zero), ~5% partly. Only
# orders of two or more units (about two thirds) can come back partly.
FULL_RETURN_SHARE = 0.01
PARTIAL_RETURN_DRAW = 0.075
# One customer in CUSTOMER_DEFECT_EVERY is exported badly (0.2%), cycling
# through: no usable identifier at all; exported twice, an older version
# first; followed by a stray row without a customer_id.
CUSTOMER_DEFECT_EVERY = 500
CUSTOMER_DEFECT_KINDS = ("no_identifier", "re_exported", "missing_customer_id")
# LOYAL_ORDER_SHARE of orders go to a loyal LOYAL_SHARE of customers, the rest
# to anyone; about a quarter of customers end up with no order at all.
LOYAL_SHARE = 0.2
LOYAL_ORDER_SHARE = 0.4
PARQUET_BATCH_ROWS = 100_000


# --------------------------------------------------------------------------
# Reference data: countries, cities, stores, people, products.
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Country:
    code: str
    weight: float  # share of customers, percent
    currency: str
    calling_code: str
    trunk: str  # national trunk prefix written before national numbers
    spellings: tuple[tuple[str, float], ...]  # how people write the country
    mobiles: tuple[tuple[str, tuple[int, ...]], ...]  # NSN prefix, digit groups
    mobile_share: float
    fx: float  # price multiplier from the USD catalogue price


NANP_GROUPS = (3, 3, 4)


def _plans(prefixes: str, groups: tuple[int, ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Numbering plans sharing one digit grouping. The prefixes are ranges
    phonenumbers accepts as valid, so clean numbers pass validation."""
    return tuple((prefix, groups) for prefix in prefixes.split())


COUNTRIES = {
    c.code: c
    for c in (
        Country("US", 70, "USD", "1", "1",
                (("US", 40), ("USA", 15), ("United States", 20), ("us", 8), ("usa", 5),
                 ("United States of America", 5), ("U.S.A.", 4), ("U.S.", 3)),
                (), 0.0, 1.0),
        Country("GB", 7, "GBP", "44", "0",
                (("GB", 30), ("UK", 25), ("United Kingdom", 25), ("GBR", 8),
                 ("Great Britain", 5), ("England", 5), ("uk", 2)),
                # 07700 900xxx is Ofcom's range for drama: well-formed but never valid.
                _plans("74 75 77 78 79 7700900", (4, 6)), 0.7, 0.79),
        Country("FR", 4, "EUR", "33", "0",
                (("FR", 50), ("FRA", 10), ("France", 35), ("france", 5)),
                _plans("61 62 64 66 67 68 75 76 77 78", (1, 2, 2, 2, 2)), 0.6, 0.92),
        Country("DE", 4, "EUR", "49", "0",
                (("DE", 45), ("DEU", 10), ("Germany", 30), ("Deutschland", 15)),
                _plans("151 152 176", (3, 8)) + _plans("160 170", (3, 7)), 0.6, 0.92),
        Country("CA", 4, "CAD", "1", "1",
                (("CA", 50), ("CAN", 15), ("Canada", 35)), (), 0.0, 1.37),
        Country("ES", 3, "EUR", "34", "",
                (("ES", 50), ("ESP", 10), ("Spain", 30), ("España", 10)),
                _plans("6", (3, 3, 3)), 0.7, 0.92),
        Country("IT", 3, "EUR", "39", "",
                (("IT", 50), ("ITA", 10), ("Italy", 30), ("Italia", 10)),
                _plans("32 33 34 38", (3, 3, 4)), 0.7, 0.92),
        Country("NL", 2, "EUR", "31", "0",
                (("NL", 45), ("NLD", 10), ("Netherlands", 25), ("The Netherlands", 10),
                 ("Holland", 10)),
                _plans("61 62 63 64 65", (1, 8)), 0.7, 0.92),
        Country("AU", 2, "AUD", "61", "0",
                (("AU", 50), ("AUS", 15), ("Australia", 35)),
                _plans("40 41 42 43 46", (3, 3, 3)), 0.7, 1.52),
        Country("IE", 1, "EUR", "353", "0",
                (("IE", 45), ("IRL", 10), ("Ireland", 35), ("Republic of Ireland", 10)),
                _plans("83 85 86 87 89", (2, 3, 4)), 0.7, 0.92),
    )
}


@dataclass(frozen=True)
class City:
    country: str
    names: tuple[str, ...]  # canonical spelling first, then variants people type
    region: tuple[str, str]  # (code, name); either may be empty
    postcodes: tuple[str, ...]  # patterns: '#' digit, '@' letter
    landlines: tuple[tuple[str, tuple[int, ...]], ...]  # NSN prefix, digit groups
    stores: tuple[str, ...]  # keys of the stores its customers call home
    weight: float  # relative to the other cities of the same country


def _us(names, state, zips, areas, stores, weight):
    landlines = _plans(areas, NANP_GROUPS)
    return City("US", names, state, tuple(zips.split()), landlines, tuple(stores.split()), weight)


def _city(country, names, region, postcodes, landlines, stores, weight):
    return City(country, names, region, postcodes, landlines, tuple(stores.split()), weight)


CITIES = (
    _us(("Seattle",), ("WA", "Washington"), "981##", "206", "SEA", 5),
    _us(("Bellevue",), ("WA", "Washington"), "980##", "425", "SEA", 2),
    _us(("Anchorage",), ("AK", "Alaska"), "995##", "907", "SEA", 0.3),
    _us(("Palo Alto",), ("CA", "California"), "943##", "650", "PAL", 2),
    _us(("San Francisco", "SF"), ("CA", "California"), "941##", "415 628", "PAL", 4),
    _us(("San Jose",), ("CA", "California"), "951##", "408", "PAL", 2),
    _us(("Los Angeles", "LA"), ("CA", "California"), "900## 900##", "213 310 323", "LAX", 6),
    _us(("Pasadena",), ("CA", "California"), "911##", "626", "LAX", 1),
    _us(("Honolulu",), ("HI", "Hawaii"), "968##", "808", "LAX", 0.4),
    _us(("San Diego",), ("CA", "California"), "921##", "619 858", "SAN", 3),
    _us(("Portland",), ("OR", "Oregon"), "972##", "503 971", "PDX", 3),
    _us(("Denver",), ("CO", "Colorado"), "802##", "303 720", "DEN", 3),
    _us(("Boulder",), ("CO", "Colorado"), "803##", "303", "DEN", 1),
    _us(("Salt Lake City",), ("UT", "Utah"), "841##", "801", "DEN", 1),
    _us(("Phoenix",), ("AZ", "Arizona"), "850##", "602", "PHX", 3),
    _us(("Scottsdale",), ("AZ", "Arizona"), "852##", "480", "PHX", 1),
    _us(("Las Vegas",), ("NV", "Nevada"), "891##", "702", "PHX", 1.5),
    _us(("Austin",), ("TX", "Texas"), "787##", "512 737", "AUS", 3),
    _us(("San Antonio",), ("TX", "Texas"), "782##", "210", "AUS", 1.5),
    _us(("Dallas",), ("TX", "Texas"), "752##", "214 972 469", "DAL", 3),
    _us(("Houston",), ("TX", "Texas"), "770##", "713 281 832", "DAL", 3),
    _us(("Chicago",), ("IL", "Illinois"), "606##", "312 773 872", "CHI", 5),
    _us(("Evanston",), ("IL", "Illinois"), "602##", "847", "CHI", 1),
    _us(("Minneapolis",), ("MN", "Minnesota"), "554##", "612", "MSP", 2),
    _us(("Saint Paul", "St. Paul", "St Paul"), ("MN", "Minnesota"), "551##", "651", "MSP", 1),
    _us(("Atlanta",), ("GA", "Georgia"), "303##", "404 678 470", "ATL", 3),
    _us(("Charlotte",), ("NC", "North Carolina"), "282##", "704 980", "ATL", 2),
    _us(("Nashville",), ("TN", "Tennessee"), "372##", "615", "ATL", 1.5),
    _us(("Miami",), ("FL", "Florida"), "331##", "305 786", "MIA", 3),
    _us(("Orlando",), ("FL", "Florida"), "328##", "407 321", "MIA", 2),
    _us(("San Juan",), ("PR", "Puerto Rico"), "009##", "787 939", "MIA", 0.3),
    _us(("New York", "NYC", "New York City"), ("NY", "New York"), "100## 101##",
        "212 646 917", "NYC", 7),
    _us(("Brooklyn",), ("NY", "New York"), "112##", "718 347 929", "NYC", 3),
    _us(("Jersey City",), ("NJ", "New Jersey"), "073##", "201 551", "NYC", 1),
    _us(("Philadelphia",), ("PA", "Pennsylvania"), "191##", "215 267", "NYC", 2),
    _us(("Washington", "Washington DC", "Washington, D.C."), ("DC", "District of Columbia"),
        "200##", "202", "NYC", 2),
    _us(("Boston",), ("MA", "Massachusetts"), "021##", "617 857", "BOS", 3),
    _us(("Cambridge",), ("MA", "Massachusetts"), "021##", "617", "BOS", 1),
    _us(("Providence",), ("RI", "Rhode Island"), "029##", "401", "BOS", 0.7),
    _city("GB", ("London",), ("", "Greater London"),
          ("SW1A #@@", "W1D #@@", "EC1A #@@", "N1 #@@", "E2 #@@", "SE1 #@@", "NW3 #@@"),
          (("207", (2, 4, 4)), ("203", (2, 4, 4)), ("208", (2, 4, 4))), "LON1 LON2", 5),
    _city("GB", ("Manchester",), ("", "Greater Manchester"), ("M1 #@@", "M4 #@@", "M20 #@@"),
          (("161", (3, 3, 4)),), "MAN", 2),
    _city("GB", ("Birmingham",), ("", "West Midlands"), ("B1 #@@", "B15 #@@"),
          (("1214", (3, 3, 4)), ("1216", (3, 3, 4))), "MAN", 1),
    _city("GB", ("Leeds",), ("", "West Yorkshire"), ("LS1 #@@", "LS6 #@@"),
          (("1132", (3, 3, 4)), ("1134", (3, 3, 4))), "MAN", 1),
    _city("GB", ("Edinburgh",), ("", "Scotland"), ("EH1 #@@", "EH3 #@@"),
          (("1312", (3, 3, 4)), ("1314", (3, 3, 4))), "MAN", 0.5),
    _city("GB", ("Bristol",), ("", ""), ("BS1 #@@", "BS8 #@@"), (("1173", (3, 3, 4)), ("1179", (3, 3, 4))),
          "LON1", 0.5),
    _city("GB", ("Brighton",), ("", "East Sussex"), ("BN1 #@@", "BN2 #@@"),
          (("1273", (4, 6)),), "LON2", 0.5),
    _city("FR", ("Paris",), ("", "Île-de-France"), ("7500#", "7501#"),
          (("1", (1, 2, 2, 2, 2)),), "PAR", 5),
    _city("FR", ("Lyon",), ("", "Auvergne-Rhône-Alpes"), ("6900#",),
          (("4", (1, 2, 2, 2, 2)),), "LYS", 2),
    _city("FR", ("Marseille",), ("", ""), ("130##",), (("4", (1, 2, 2, 2, 2)),), "LYS", 1),
    _city("FR", ("Toulouse",), ("", ""), ("3100#",), (("561", (1, 2, 2, 2, 2)),), "PAR", 0.5),
    _city("FR", ("Bordeaux",), ("", ""), ("3300#",), (("556", (1, 2, 2, 2, 2)),), "PAR", 0.5),
    _city("DE", ("Berlin",), ("BE", "Berlin"), ("10###", "12###"), (("30", (2, 8)),), "BER", 3),
    _city("DE", ("München", "Munich", "Muenchen"), ("BY", "Bayern"), ("80###", "81###"),
          (("89", (2, 8)),), "MUC", 3),
    _city("DE", ("Hamburg",), ("HH", "Hamburg"), ("20###", "22###"), (("40", (2, 8)),),
          "BER", 1.5),
    _city("DE", ("Köln", "Cologne", "Koeln"), ("NW", "Nordrhein-Westfalen"), ("50###",),
          (("221", (3, 7)),), "BER", 1),
    _city("DE", ("Frankfurt am Main", "Frankfurt"), ("HE", "Hessen"), ("60###",),
          (("69", (2, 8)),), "MUC", 1),
    _city("CA", ("Toronto",), ("ON", "Ontario"), ("M5V #@#", "M4C #@#", "M6K #@#"),
          (("416", NANP_GROUPS), ("647", NANP_GROUPS)), "YYZ", 4),
    _city("CA", ("Vancouver",), ("BC", "British Columbia"), ("V6B #@#", "V5K #@#"),
          (("604", NANP_GROUPS), ("778", NANP_GROUPS)), "YVR", 3),
    _city("CA", ("Montréal", "Montreal"), ("QC", "Québec"), ("H2X #@#", "H3B #@#"),
          (("514", NANP_GROUPS), ("438", NANP_GROUPS)), "YYZ", 2),
    _city("CA", ("Calgary",), ("AB", "Alberta"), ("T2P #@#",), (("403", NANP_GROUPS),),
          "YVR", 1),
    _city("CA", ("Ottawa",), ("ON", "Ontario"), ("K1P #@#",), (("613", NANP_GROUPS),), "YYZ", 1),
    _city("ES", ("Madrid",), ("", "Comunidad de Madrid"), ("280##",), (("91", (3, 3, 3)),),
          "MAD", 3),
    _city("ES", ("Barcelona",), ("", "Cataluña"), ("080##",), (("93", (3, 3, 3)),), "MAD", 2),
    _city("ES", ("Valencia",), ("", ""), ("460##",), (("96", (3, 3, 3)),), "MAD", 1),
    _city("ES", ("Sevilla", "Seville"), ("", "Andalucía"), ("410##",), (("95", (3, 3, 3)),),
          "MAD", 1),
    _city("IT", ("Milano", "Milan"), ("MI", "Lombardia"), ("201##",), (("02", (2, 4, 4)),),
          "MIL", 3),
    _city("IT", ("Roma", "Rome"), ("RM", "Lazio"), ("001##",), (("06", (2, 4, 4)),), "MIL", 2),
    _city("IT", ("Napoli", "Naples"), ("NA", "Campania"), ("801##",), (("081", (3, 3, 4)),),
          "MIL", 1),
    _city("IT", ("Torino", "Turin"), ("TO", "Piemonte"), ("101##",), (("011", (3, 3, 4)),),
          "MIL", 1),
    _city("NL", ("Amsterdam",), ("NH", "Noord-Holland"), ("10## @@",), (("20", (2, 3, 4)),),
          "AMS", 3),
    _city("NL", ("Rotterdam",), ("ZH", "Zuid-Holland"), ("30## @@",), (("10", (2, 3, 4)),),
          "AMS", 1),
    _city("NL", ("Utrecht",), ("UT", "Utrecht"), ("35## @@",), (("30", (2, 3, 4)),), "AMS", 1),
    _city("AU", ("Sydney",), ("NSW", "New South Wales"), ("20##",), (("29", (1, 4, 4)), ("28", (1, 4, 4))),
          "SYD", 3),
    _city("AU", ("Melbourne",), ("VIC", "Victoria"), ("30##",), (("39", (1, 4, 4)), ("38", (1, 4, 4))), "MEL", 3),
    _city("AU", ("Brisbane",), ("QLD", "Queensland"), ("40##",), (("73", (1, 4, 4)),), "SYD", 1),
    _city("AU", ("Perth",), ("WA", "Western Australia"), ("60##",), (("89", (1, 4, 4)),),
          "MEL", 0.5),
    _city("IE", ("Dublin",), ("", "Co. Dublin"), ("D0# @#@#", "D1# @#@#"), (("1", (1, 3, 4)),),
          "DUB", 3),
    _city("IE", ("Cork",), ("", "Co. Cork"), ("T12 @#@#",), (("21", (2, 3, 4)),), "DUB", 1),
    _city("IE", ("Galway",), ("", "Co. Galway"), ("H91 @#@#",), (("91", (2, 3, 3)),), "DUB", 0.5),
)


@dataclass(frozen=True)
class StoreSpec:
    key: str
    name: str
    city: str  # canonical city name, looked up in CITIES
    timezone: str
    country_written: str  # the store master is cleaner than the CRM, but not clean


STORE_SPECS = (
    StoreSpec("SEA", "Seattle Downtown", "Seattle", "America/Los_Angeles", "US"),
    StoreSpec("PAL", "Palo Alto, University Ave", "Palo Alto", "America/Los_Angeles", "US"),
    StoreSpec("LAX", "Los Angeles Grove", "Los Angeles", "America/Los_Angeles", "US"),
    StoreSpec("SAN", "San Diego Gaslamp", "San Diego", "America/Los_Angeles", "US"),
    StoreSpec("PDX", "Portland Pearl District", "Portland", "America/Los_Angeles", "USA"),
    StoreSpec("DEN", "Denver Cherry Creek", "Denver", "America/Denver", "US"),
    StoreSpec("PHX", "Phoenix Biltmore", "Phoenix", "America/Phoenix", "US"),
    StoreSpec("AUS", "Austin \"The Domain\"", "Austin", "America/Chicago", "US"),
    StoreSpec("DAL", "Dallas NorthPark", "Dallas", "America/Chicago", "US"),
    StoreSpec("CHI", "Chicago Michigan Ave", "Chicago", "America/Chicago", "US"),
    StoreSpec("MSP", "Minneapolis Uptown", "Minneapolis", "America/Chicago", "United States"),
    StoreSpec("ATL", "Atlanta Ponce City", "Atlanta", "America/New_York", "US"),
    StoreSpec("MIA", "Miami Design District", "Miami", "America/New_York", "US"),
    StoreSpec("NYC", "New York SoHo", "New York", "America/New_York", "US"),
    StoreSpec("BOS", "Boston Newbury St", "Boston", "America/New_York", "US"),
    StoreSpec("LON1", "London, Oxford Street", "London", "Europe/London", "GB"),
    StoreSpec("LON2", "London, Stratford", "London", "Europe/London", "United Kingdom"),
    StoreSpec("MAN", "Manchester Arndale", "Manchester", "Europe/London", "GB"),
    StoreSpec("PAR", "Paris Rivoli", "Paris", "Europe/Paris", "FR"),
    StoreSpec("LYS", "Lyon Part-Dieu", "Lyon", "Europe/Paris", "FR"),
    StoreSpec("BER", "Berlin Mitte", "Berlin", "Europe/Berlin", "DE"),
    StoreSpec("MUC", "München Marienplatz", "München", "Europe/Berlin", "Deutschland"),
    StoreSpec("YYZ", "Toronto Eaton Centre", "Toronto", "America/Toronto", "CA"),
    StoreSpec("YVR", "Vancouver Robson", "Vancouver", "America/Vancouver", "CAN"),
    StoreSpec("MAD", "Madrid Gran Vía", "Madrid", "Europe/Madrid", "ES"),
    StoreSpec("MIL", "Milano Corso Buenos Aires", "Milano", "Europe/Rome", "IT"),
    StoreSpec("AMS", "Amsterdam Kalverstraat", "Amsterdam", "Europe/Amsterdam", "NL"),
    StoreSpec("SYD", "Sydney Pitt St", "Sydney", "Australia/Sydney", "AU"),
    StoreSpec("MEL", "Melbourne Bourke St", "Melbourne", "Australia/Melbourne", "AU"),
    StoreSpec("DUB", "Dublin Grafton Street", "Dublin", "Europe/Dublin", "IE"),
)

# (female first names, male first names, last names) per country.
NAMES = {
    "US": (
        ("Emily Olivia Sophia Ava Isabella Mia Zoë Chloe Madison Abigail María Ashley Jessica "
        "Sarah Grace Hannah Aaliyah Mei Priya Renée"),
        ("James Michael Robert David John William José Daniel Matthew Anthony Christopher "
        "Andrew Joshua Ethan Noah Liam Jamal Wei Raj Valéry"),
        ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernández "
        "Nuñez López O'Brien O'Connor McDonald Nguyen Kim Patel Lee Wilson Anderson Taylor "
        "Thomas Moore Jackson White Harris Clark Lewis D'Amico Smith-Jones St._John Van_Buren"),
    ),
    "GB": (
        "Olivia Amelia Isla Ava Emily Zoë Chloë Poppy Freya Siân",
        "Oliver George Harry Jack Charlie Thomas Rhys Dafydd Callum Hamish",
        ("Smith Jones Taylor Brown Williams Wilson Evans Thomas O'Neill McKenzie Smith-Jones "
        "ffrench Ap_Rhys"),
    ),
    "FR": (
        "Léa Chloé Manon Inès Anaïs Hélène Zoé Camille Élodie Maëlle",
        "Valéry François Jérôme Noël Théo Hugo Lucas Gaël Loïc Jean-Luc",
        "Martin Bernard Dubois Lefèvre Moreau Girard Rousseau Faure Mercier D'Arcy Le_Gall",
    ),
    "DE": (
        "Anna Lena Sophie Marie Jana Hannah Käthe Birgit Grete Jördis",
        "Jürgen Jörg Lukas Maximilian Felix Paul Stefan Björn Günter Uwe",
        "Müller Schmidt Schneider Fischer Weiß Schröder Groß Köhler Meyer von_Bülow",
    ),
    "ES": (
        "María Lucía Sofía Begoña Ainhoa Carmen Inés Nuria",
        "José Íñigo Javier Álvaro Sergio Jesús Pablo Andrés",
        ("García Fernández González Rodríguez López Martínez Sánchez Pérez Nuñez Muñoz Peña "
        "Ibáñez de_la_Fuente"),
    ),
    "IT": (
        "Giulia Francesca Chiara Sofia Aurora Alessia",
        "Niccolò Luca Marco Alessandro Lorenzo Mattia Nicolò",
        "Rossi Russo Ferrari Esposito Bianchi Romano D'Angelo De_Luca Ricci Galli Dell'Acqua",
    ),
    "NL": (
        "Emma Sanne Lotte Zoë Fenna Anouk",
        "Daan Bram Sem Lucas Thijs Joël",
        "de_Jong Jansen de_Vries van_den_Berg van_Dijk Bakker Visser Smit Meijer de_Boer 't_Hart",
    ),
    "AU": (
        "Charlotte Olivia Mia Isla Zoë Amelia",
        "Oliver Jack William Noah Lachlan Cooper",
        "Smith Jones Williams Brown Wilson Nguyen Tran Kelly O'Brien Papadopoulos",
    ),
    "IE": (
        "Aoife Siobhán Niamh Saoirse Clodagh Róisín",
        "Seán Cian Oisín Pádraig Conor Darragh",
        "Murphy Kelly O'Sullivan Walsh O'Brien Byrne Ryan O'Connor Ó_Briain Mac_Giolla",
    ),
    "CA": (
        "Emma Olivia Chloé Léa Zoë Amélie",
        "Liam Noah Félix William Gabriel Étienne",
        "Tremblay Gagnon Roy Côté Bouchard Smith Brown Wilson MacDonald Bélanger Lévesque",
    ),
}

# Per country: (template, street names, suffixes); '_' joins multi-word names.
STREETS = {
    "US": ("{n} {name} {suffix}",
           ("Main Oak Pine Maple Cedar Elm Washington Lake Hill Park 1st 2nd 3rd Sunset Mission "
           "Market Broadway Lincoln"),
           "St St. Street Ave Avenue Blvd Rd Dr Ln Way"),
    "CA": ("{n} {name} {suffix}", "Yonge Queen King Robson Bloor Dundas Granville Bank",
           "St Street St_W St_E Ave"),
    "AU": ("{n} {name} {suffix}", "George Collins Queen Elizabeth Pitt Bourke Flinders Hay",
           "St Street Lane Rd"),
    "GB": ("{n} {name}",
           ("High_Street Station_Road Church_Lane Victoria_Road King's_Road Mill_Lane "
           "Park_Avenue Queen's_Drive"),
           ""),
    "IE": ("{n} {name}",
           "Main_Street O'Connell_Street Grafton_Street Patrick_Street Dame_Street Shop_Street",
           ""),
    "FR": ("{n} {name}",
           ("rue_de_la_Paix avenue_Foch boulevard_Saint-Germain rue_du_Faubourg_Saint-Honoré "
           "place_Bellecour rue_Victor_Hugo"),
           ""),
    "DE": ("{name} {n}",
           "Hauptstraße Bahnhofstraße Schillerstr. Goethestraße Lindenallee Am_Markt Königsallee",
           ""),
    "ES": ("{name}, {n}",
           ("Calle_Mayor Calle_de_Alcalá Gran_Vía Paseo_de_Gracia Avenida_de_la_Constitución "
           "C/_Mayor"),
           ""),
    "IT": ("{name} {n}",
           "Via_Roma Corso_Buenos_Aires Via_dei_Condotti Piazza_Navona Via_Garibaldi", ""),
    "NL": ("{name} {n}", "Prinsengracht Kerkstraat Damrak Herengracht Stationsplein", ""),
}
UNIT_FORMATS = {
    "US": (", Apt {u}", " #{u}", ", Suite {u}", " Unit {u}"),
    "CA": (", Apt {u}", " #{u}", ", Unit {u}"),
    "AU": ("Unit {u}/",),  # Australian units prefix the street number: 4/12 George St
    "GB": ("Flat {u}, ",),
    "IE": ("Apartment {u}, ",),
}

EMAIL_DOMAINS = {
    "_common": (("gmail.com", 30), ("yahoo.com", 8), ("hotmail.com", 8), ("outlook.com", 8),
                ("icloud.com", 5), ("googlemail.com", 1)),
    "US": (("aol.com", 3), ("comcast.net", 3), ("att.net", 2), ("me.com", 2)),
    "GB": (("btinternet.com", 4), ("yahoo.co.uk", 4), ("sky.com", 2)),
    "FR": (("orange.fr", 5), ("free.fr", 4), ("laposte.net", 2)),
    "DE": (("gmx.de", 6), ("web.de", 5), ("t-online.de", 3)),
    "CA": (("shaw.ca", 3), ("rogers.com", 3)),
    "ES": (("hotmail.es", 4), ("telefonica.net", 2)),
    "IT": (("libero.it", 5), ("alice.it", 2)),
    "NL": (("ziggo.nl", 4), ("kpnmail.nl", 2)),
    "AU": (("bigpond.com", 5), ("optusnet.com.au", 2)),
    "IE": (("eircom.net", 4),),
}
GMAIL_TAGS = ("shop", "promo", "store", "news", "deals", "2024", "receipts")
WHITESPACE = (" ", "  ", "\t", "\u00a0", " \u00a0")

CATEGORIES = {
    # category: (price range in USD, nouns)
    "Apparel": ((15, 120), "T-Shirt Hoodie Jacket Jeans Sweater Dress Scarf Chinos"),
    "Footwear": ((40, 180), "Sneaker Boot Sandal Loafer Trail_Runner Slipper"),
    "Accessories": ((10, 150), "Backpack Wallet Belt Sunglasses Tote_Bag Beanie"),
    "Home & Kitchen": ((8, 200), "Skillet Chef's_Knife Mug_Set Throw_Pillow Towel_Set Candle"),
    "Beauty": ((5, 90), "Face_Cream Shampoo Lip_Balm Eau_de_Parfum Serum Hand_Soap"),
    "Electronics": ((15, 350), "Headphones Charger Speaker Power_Bank Smart_Plug Earbuds"),
    "Toys & Games": ((8, 80), "Puzzle Board_Game Plush_Bear Building_Set Card_Game"),
    "Sports & Outdoors": ((10, 300), "Yoga_Mat Water_Bottle Tent Dumbbell_Set Bike_Light"),
    "Books & Stationery": ((5, 40), "Notebook Planner Pen_Set Cookbook Sketchbook"),
    "Grocery": ((3, 30), "Coffee_Beans Olive_Oil Dark_Chocolate Tea_Sampler Granola"),
    "Jewelry": ((25, 500), "Necklace Ring Earrings Bracelet Pendant"),
    "Garden": ((5, 120), "Planter Pruning_Shears Seed_Kit Hose_Nozzle Watering_Can"),
}
BRANDS = (
    "Alder & Finch", "Bluecrest", "Cobalt Ridge", "Driftwood Co.", "Ember Lane", "Foxglove",
    "Granite Peak", "Harbor & Vine", "Ironbark", "Juniper Row", "Kestrel", "Lumen",
    "Maple Hollow", "Nimbus", "Oakridge Supply", "Pinecone Studio", "Quillfeather",
    "Redtail", "Saltmarsh", "Tidewell",
)
ADJECTIVES = (
    "Classic", "Everyday", "Pro", "Ultra", "Organic", "Vintage", "Compact", "Deluxe",
    "Essential", "Heritage", "Lightweight", "Premium",
)
# Variant suffixes; some put commas and double quotes into names on purpose.
VARIANTS = (
    "", "", "", "", ", Men's", ", Women's", ", 2-Pack", ', 12"', ' "Limited Edition"',
    " (Blue)", " - Large", ", Size 10", ', 3/4" Thick',
)
PRODUCT_COUNT = 500


def _words(text: str) -> tuple[str, ...]:
    """Split a word list; '_' joins words that belong together."""
    return tuple(word.replace("_", " ") for word in text.split())


PEOPLE = {
    code: tuple(_words(part) for part in parts) for code, parts in NAMES.items()
}
STREET_PARTS = {
    code: (template, _words(names), _words(suffixes))
    for code, (template, names, suffixes) in STREETS.items()
}


# --------------------------------------------------------------------------
# Small fast helpers. Every random draw goes through a bound random.random
# (`rnd`): randrange and choice cost several times more, and the generator
# makes tens of millions of draws.
# --------------------------------------------------------------------------

def _choice(rnd, options):
    return options[int(rnd() * len(options))]


def _digits(rnd, count: int) -> str:
    """`count` random digits (leading zeros kept); count stays well under 15."""
    return f"{int(rnd() * 10**count):0{count}d}" if count > 0 else ""


class Weighted:
    """Constant-time weighted choice through a pre-expanded lookup table.

    random.choices re-accumulates the weights on every call, which is too
    slow for the per-order and per-item hot path.
    """

    __slots__ = ("size", "table")

    def __init__(self, pairs, resolution: int = 1000):
        total = sum(weight for _, weight in pairs)
        table = []
        for value, weight in pairs:
            if weight > 0:
                table.extend([value] * max(1, round(weight / total * resolution)))
        self.table = tuple(table)
        self.size = len(table)

    def pick(self, rnd):
        return self.table[int(rnd() * self.size)]


_MASK64 = (1 << 64) - 1


def _mix64(value: int) -> int:
    """SplitMix64 finaliser: a stateless, well-spread hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _stream_seed(seed: int, name: str) -> int:
    # Separate, named streams keep one table's rows stable when another
    # table's generator changes.
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "big")


POSTCODE_LETTERS = "ABDEFGHJLNPRSTUWXYZ"  # letters valid in both UK and Canadian codes


def _fill_pattern(rnd, pattern: str) -> str:
    """Fill a postcode pattern: '#' a digit, '@' a letter, anything else as is."""
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(int(rnd() * 10)))
        elif ch == "@":
            out.append(_choice(rnd, POSTCODE_LETTERS))
        else:
            out.append(ch)
    return "".join(out)


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


@functools.cache
def _email_word(name: str, keep_apostrophe: bool) -> str:
    """A name as people put it in an address: ASCII, lower case, no spaces."""
    text = name.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("œ", "oe")
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = text.lower().replace(" ", "")
    return text if keep_apostrophe else text.replace("'", "")


def _messy_case(rnd, text: str, lower: float, upper: float) -> str:
    roll = rnd()
    if roll < lower:
        return text.lower()
    if roll < lower + upper:
        return text.upper()
    return text


def _pad(rnd, text: str, share: float) -> str:
    """Surround text with stray whitespace (spaces, tabs, NBSP) now and then."""
    if text and rnd() < share:
        return _choice(rnd, WHITESPACE) + text + _choice(rnd, ("", " ", "\t"))
    return text


# --------------------------------------------------------------------------
# Output sinks: stream rows to csv, gzip'd csv or parquet. Each writes to
# <name>.tmp and renames on close, so a failed run leaves no half table.
# --------------------------------------------------------------------------

class CsvSink:
    """CSV writer. With verbatim=True, write() joins the fields as they are.

    csv.writer spends ~1.3 us a row checking every field for quoting; the
    order tables hold generated ids, codes and numbers that never need it, plus
    product columns that the caller quotes once per product (csv_fields), so
    joining is 5x faster and writes the same bytes.
    """

    verbatim = False

    def __init__(self, path: Path, columns: tuple[str, ...], compress: bool, verbatim: bool):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.verbatim = verbatim
        self._stack = contextlib.ExitStack()
        # The sink outlives this method; close() closes the stack.
        binary = self._stack.enter_context(open(self.tmp, "wb"))  # noqa: SIM115
        if compress:
            # mtime=0 and no stored file name keep the gzip bytes reproducible.
            binary = self._stack.enter_context(gzip.GzipFile(
                filename="", mode="wb", fileobj=binary, mtime=0, compresslevel=6))
        text = self._stack.enter_context(io.TextIOWrapper(binary, encoding="utf-8", newline=""))
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(columns)
        if verbatim:
            write_text = text.write
            self.write = lambda row: write_text(",".join(row) + "\r\n")
        else:
            self.write = writer.writerow

    def close(self) -> None:
        self._stack.close()
        os.replace(self.tmp, self.path)


def csv_fields(fields: tuple[str, ...]) -> str:
    """Fields encoded as one CSV fragment, for a verbatim CsvSink."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


class ParquetSink:
    verbatim = False

    def __init__(self, path: Path, columns: tuple[str, ...]):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:  # only this format needs it
            raise SystemExit("--format parquet needs pyarrow: pip install pyarrow") from exc
        self._pa = pa
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.schema = pa.schema([(name, pa.string()) for name in columns])
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.batch: list[tuple] = []
        self.write = self._append

    def _append(self, row) -> None:
        self.batch.append(row)
        if len(self.batch) >= PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.batch:
            return
        pa = self._pa
        # An empty CSV field reads as NULL, so the parquet holds NULL there too.
        arrays = [pa.array([value or None for value in column], type=pa.string())
                  for column in zip(*self.batch)]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.batch = []

    def close(self) -> None:
        self._flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


class CountingSink:
    """Counts rows for the summary; used on the tables off the hot path."""

    def __init__(self, sink):
        self.sink = sink
        self.verbatim = sink.verbatim
        self.rows = 0
        inner = sink.write

        def write(row):
            self.rows += 1
            inner(row)

        self.write = write

    def close(self) -> None:
        self.sink.close()


def open_sink(out: Path, table: str, fmt: str, verbatim: bool = False):
    path = out / f"{table}.{fmt}"
    if fmt == "parquet":
        return ParquetSink(path, COLUMNS[table])
    return CsvSink(path, COLUMNS[table], compress=fmt == "csv.gz", verbatim=verbatim)


def remove_stale_outputs(out: Path, fmt: str) -> None:
    # The dbt reader prefers parquet over csv, so a leftover table in another
    # format would silently shadow (or be shadowed by) the fresh one.
    for table in COLUMNS:
        for other in FORMATS:
            stale = out / f"{table}.{other}"
            if other != fmt and stale.exists():
                stale.unlink()
                print(f"removed stale {stale}", file=sys.stderr)


# --------------------------------------------------------------------------
# World: stores, cities and the product catalogue, shared by all tables.
# --------------------------------------------------------------------------

@dataclass
class Store:
    store_id: str
    spec: StoreSpec
    city: City
    currency: str
    day_offsets: list[int]  # UTC offset in minutes at local noon, per history day
    offset_texts: list[str]


@dataclass
class Product:
    row: tuple[str, str, str, str]  # product_id, product_name, category, brand
    prices: dict[str, tuple[int, int]]  # currency -> (shelf cents, discounted cents)


class World:
    def __init__(self, seed: int, as_of: date):
        self.seed = seed
        self.as_of = as_of
        self.start = as_of - timedelta(days=HISTORY_DAYS)
        self.stores = self._build_stores()
        self.store_by_key = {store.spec.key: store for store in self.stores}
        self.stores_by_country: dict[str, list[Store]] = {}
        for store in self.stores:
            self.stores_by_country.setdefault(store.city.country, []).append(store)
        self.home_table = self._build_home_table()
        self.geo_salt = _stream_seed(seed, "geo")
        self.products = build_catalogue(Random(_stream_seed(seed, "catalogue")))

    def _build_stores(self) -> list[Store]:
        stores = []
        for number, spec in enumerate(STORE_SPECS, start=1):
            city = next(c for c in CITIES if c.names[0] == spec.city)
            offsets = daily_offsets(spec.timezone, self.start, HISTORY_DAYS + 1)
            stores.append(Store(
                store_id=f"ST{number:03d}",
                spec=spec,
                city=city,
                currency=COUNTRIES[city.country].currency,
                day_offsets=offsets,
                offset_texts=[_offset_text(minutes) for minutes in offsets],
            ))
        return stores

    def _build_home_table(self) -> Weighted:
        """(city, home store) pairs weighted by country share and city weight."""
        pairs = []
        for code, country in COUNTRIES.items():
            cities = [c for c in CITIES if c.country == code]
            city_total = sum(c.weight for c in cities)
            for city in cities:
                share = country.weight * city.weight / city_total
                for key in city.stores:
                    pairs.append(((city, self.store_by_key[key]), share / len(city.stores)))
        return Weighted(pairs, resolution=20_000)

    def home_of(self, customer_index: int) -> tuple[City, Store]:
        """City and home store of a customer: a hash, so nothing is kept in memory."""
        u = _mix64(customer_index ^ self.geo_salt) / 2.0**64
        return self.home_table.table[int(u * self.home_table.size)]


def daily_offsets(timezone: str, start: date, days: int) -> list[int]:
    # Local noon: stores are closed at the 2-3am DST switch, so noon's offset
    # is the offset of every trading hour that day.
    try:
        zone = ZoneInfo(timezone)
    except ZoneInfoNotFoundError as exc:
        raise SystemExit(f"time zone {timezone} not found: pip install tzdata") from exc
    offsets = []
    for day in range(days):
        noon = datetime.combine(start + timedelta(days=day), clock_time(12), zone)
        offsets.append(int(noon.utcoffset().total_seconds()) // 60)
    return offsets


def build_catalogue(rng: Random) -> list[Product]:
    categories = list(CATEGORIES)
    products = []
    seen_names = set()
    while len(products) < PRODUCT_COUNT:
        category = categories[len(products) % len(categories)]
        (low, high), nouns = CATEGORIES[category]
        brand = rng.choice(BRANDS)
        name = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(_words(nouns))}"
        name += rng.choice(VARIANTS)
        if name in seen_names:
            continue
        seen_names.add(name)
        product_id = f"SKU-{100001 + len(products)}"
        usd = rng.uniform(low, high)
        products.append(Product((product_id, name, category, brand), _local_prices(usd)))
    return products


def _local_prices(usd: float) -> dict[str, tuple[int, int]]:
    prices = {}
    for country in COUNTRIES.values():
        amount = usd * country.fx
        # Shelf prices end in .99, or .00 from 100 up; promotions take 20% off.
        cents = round(amount) * 100 if amount >= 100 else max(1, math.floor(amount)) * 100 - 1
        prices[country.currency] = (cents, round(cents * 0.8))
    return prices


def store_rows(world: World) -> list[tuple]:
    rnd = Random(_stream_seed(world.seed, "stores")).random
    rows = []
    for store in world.stores:
        city = store.city
        region_code, region_name = city.region
        rows.append((
            store.store_id,
            store.spec.name,
            city.names[0],
            region_code or region_name,
            _fill_pattern(rnd, _choice(rnd, city.postcodes)),
            store.spec.country_written,
        ))
    return rows


# --------------------------------------------------------------------------
# Customers.
# --------------------------------------------------------------------------

class CustomerFactory:
    def __init__(self, world: World, customers: int):
        self.world = world
        self.id_width = max(7, len(str(customers)))
        self.rnd = Random(_stream_seed(world.seed, "customers")).random
        self.spellings = {
            code: Weighted(country.spellings) for code, country in COUNTRIES.items()
        }
        self.domains = {
            code: Weighted(EMAIL_DOMAINS["_common"] + EMAIL_DOMAINS[code])
            for code in COUNTRIES
        }
        self.foreign_cities = {
            code: tuple(c for c in CITIES if c.country != code) for code in COUNTRIES
        }
        self.as_of_midnight = datetime.combine(world.as_of, clock_time())

    def customer_id(self, index: int) -> str:
        return f"C{index + 1:0{self.id_width}d}"

    def rows(self, index: int) -> tuple[tuple, ...]:
        """The customer's row, or for a defective export the rows written instead."""
        if index % CUSTOMER_DEFECT_EVERY != CUSTOMER_DEFECT_EVERY // 3:
            return (self.row(index),)
        kind = CUSTOMER_DEFECT_KINDS[(index // CUSTOMER_DEFECT_EVERY) % len(CUSTOMER_DEFECT_KINDS)]
        if kind == "no_identifier":
            return (self._no_identifier_row(index),)
        current = self.row(index)[:-1] + (self._updated_at(newest=0, oldest=180),)
        other = self.row(index)
        if kind == "re_exported":
            # A stale version with other contact details, updated a year or more earlier.
            return (other[:-1] + (self._updated_at(newest=365, oldest=3 * 365),), current)
        return (current, ("",) + other[1:])  # missing_customer_id

    def row(self, index: int) -> tuple:
        rnd = self.rnd
        city, _store = self.world.home_of(index)
        country = city.country
        female = rnd() < 0.52
        first, last = self._person(country, female)
        street, city_text, state, postal = self._address(city)
        return (
            self.customer_id(index),
            self._email(country, first, last),
            self._phone(city),
            _pad(rnd, _messy_case(rnd, first, 0.04, 0.05), 0.03),
            _pad(rnd, _messy_case(rnd, last, 0.04, 0.05), 0.03),
            self._birth_date(),
            self._gender(female),
            street,
            city_text,
            state,
            postal,
            self._country_text(country),
            self._consent(),
            self._updated_at(),
        )

    def _no_identifier_row(self, index: int) -> tuple:
        """Nothing an ad platform could match on: only ids and bookkeeping."""
        rnd = self.rnd
        country = self.world.home_of(index)[0].country
        return (
            self.customer_id(index),
            _choice(rnd, ("", "", "n/a", "none", "-")),
            _choice(rnd, ("", "n/a", "0000000000")),
            "", "", "", "", "", "", "", "",
            self._country_text(country), "", self._updated_at(),
        )

    # -- people --------------------------------------------------------------

    def _person(self, country: str, female: bool) -> tuple[str, str]:
        rnd = self.rnd
        if rnd() < 0.1:  # a tenth carry a name from another of our countries
            country = _choice(rnd, tuple(PEOPLE))
        females, males, lasts = PEOPLE[country]
        return _choice(rnd, females if female else males), _choice(rnd, lasts)

    def _birth_date(self) -> str:
        rnd = self.rnd
        roll = rnd()
        if roll < 0.35:
            return ""
        if roll < 0.353:
            return "1900-01-01"  # the CRM's "unknown" placeholder
        born = self.world.as_of - timedelta(days=18 * 365 + int(rnd() * 67 * 365))
        if roll < 0.80:
            return born.isoformat()
        return f"{born.month}/{born.day}/{born.year}"

    def _gender(self, female: bool) -> str:
        rnd = self.rnd
        if rnd() < 0.25:
            return ""
        if female:
            return _choice(rnd, ("f", "F", "Female", "female", "FEMALE"))
        return _choice(rnd, ("m", "M", "Male", "male", "MALE"))

    def _consent(self) -> str:
        roll = self.rnd()
        return "true" if roll < 0.75 else ("false" if roll < 0.85 else "")

    def _updated_at(self, newest: int = 0, oldest: int = 3 * 365) -> str:
        """A moment between `oldest` and `newest` days before as_of, as ISO-8601 UTC."""
        rnd = self.rnd
        seconds = newest * 86400 + 1 + int(rnd() * (oldest - newest) * 86400)
        moment = self.as_of_midnight - timedelta(seconds=seconds)
        stamp = moment.isoformat()
        roll = rnd()
        if roll < 0.6:
            return stamp + "Z"
        if roll < 0.8:
            return f"{stamp}.{int(rnd() * 1000):03d}Z"
        return stamp + "+00:00"

    # -- email ---------------------------------------------------------------

    def _email(self, country: str, first: str, last: str) -> str:
        rnd = self.rnd
        roll = rnd()
        if roll < 0.08:
            return ""
        domain = self.domains[country].pick(rnd)
        local = self._email_local(first, last)
        if domain in ("gmail.com", "googlemail.com"):
            local = self._gmail_variant(local)
        email = f"{local}@{domain}"
        if roll < 0.09:
            # Already hashed by the exporting system; some upper-case the hex.
            digest = hashlib.sha256(email.encode()).hexdigest()
            return digest.upper() if rnd() < 0.25 else digest
        if roll < 0.10:
            return email.replace("@", _choice(rnd, ("", ".", " at ")))  # no @
        if roll < 0.105:  # no dotted domain
            return f"{local}@{domain.split('.')[0]}" if rnd() < 0.5 else f"{local}@localhost"
        return _pad(rnd, self._email_case(email), 0.04)

    def _email_local(self, first: str, last: str) -> str:
        rnd = self.rnd
        f = _email_word(first, False)
        l_ = _email_word(last, rnd() < 0.1)  # O'Brien is a valid local part
        pattern = int(rnd() * 7)
        if pattern == 0 or pattern == 6:
            local = f"{f}.{l_}"
        elif pattern == 1:
            local = f"{f}{l_}"
        elif pattern == 2:
            local = f"{f[0]}{l_}"
        elif pattern == 3:
            local = f"{f}_{l_}"
        elif pattern == 4:
            local = f"{l_}.{f}"
        else:
            local = f"{f}{60 + int(rnd() * 40)}"
        if rnd() < 0.35:
            local += str(1 + int(rnd() * 999))
        return local.strip(".")

    def _gmail_variant(self, local: str) -> str:
        rnd = self.rnd
        if rnd() < 0.3:
            # Gmail ignores dots in the local part, so people sprinkle them in.
            cut = 1 + int(rnd() * max(1, len(local) - 1))
            local = (local[:cut] + "." + local[cut:]).replace("..", ".").strip(".")
        if rnd() < 0.15:
            local += "+" + _choice(rnd, GMAIL_TAGS)
        return local

    def _email_case(self, email: str) -> str:
        roll = self.rnd()
        if roll < 0.75:
            return email
        local, domain = email.split("@", 1)
        if roll < 0.88:
            return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain
        if roll < 0.94:
            return email.upper()
        return local + "@" + domain.upper()

    # -- phone ---------------------------------------------------------------

    def _phone(self, city: City) -> str:
        rnd = self.rnd
        roll = rnd()
        if roll < 0.10:
            return ""
        if roll < 0.105:
            return _choice(rnd, ("n/a", "none", "000-000-0000", "1234", "unknown"))
        if roll < 0.12:
            # A number from abroad: only an international format works then.
            city = _choice(rnd, self.foreign_cities[city.country])
            country = COUNTRIES[city.country]
            nsn, groups = self._nsn(city, country)
            return _international(rnd, country, nsn, groups)
        country = COUNTRIES[city.country]
        nsn, groups = self._nsn(city, country)
        if rnd() < 0.02:
            nsn = nsn[: -1 - int(rnd() * 3)]  # digits lost on entry
        text = _render_phone(rnd, country, nsn, groups)
        if rnd() < 0.03:
            extension = _choice(rnd, (" x{}", " ext. {}", " ext {}", " Ext.{}", " #{}"))
            text += extension.format(1 + int(rnd() * 999))
        return text

    def _nsn(self, city: City, country: Country) -> tuple[str, tuple[int, ...]]:
        """National significant number (no trunk prefix) and its digit groups."""
        rnd = self.rnd
        if country.mobiles and rnd() < country.mobile_share:
            prefix, groups = _choice(rnd, country.mobiles)
        else:
            prefix, groups = _choice(rnd, city.landlines)
        rest = sum(groups) - len(prefix)
        # A subscriber number never starts with 0 or 1 right after the area code.
        return prefix + str(2 + int(rnd() * 8)) + _digits(rnd, rest - 1), groups

    # -- address -------------------------------------------------------------

    def _address(self, city: City) -> tuple[str, str, str, str]:
        rnd = self.rnd
        if rnd() < 0.04:
            return "", "", "", ""
        street = _pad(rnd, _messy_case(rnd, _street(rnd, city.country), 0.04, 0.04), 0.02)
        name = _choice(rnd, city.names) if rnd() < 0.2 else city.names[0]
        city_text = _pad(rnd, _messy_case(rnd, name, 0.1, 0.1), 0.03)
        return street, city_text, self._state(city), self._postal(city)

    def _state(self, city: City) -> str:
        rnd = self.rnd
        code, name = city.region
        if city.country not in ("US", "CA", "AU"):
            return name if name and rnd() < 0.3 else ""
        roll = rnd()
        if roll < 0.03:
            return ""
        text = code if roll < 0.6 else name
        return _pad(rnd, _messy_case(rnd, text, 0.08, 0.05), 0.02)

    def _postal(self, city: City) -> str:
        rnd = self.rnd
        code = _fill_pattern(rnd, _choice(rnd, city.postcodes))
        roll = rnd()
        if city.country == "US":
            if roll < 0.03:
                return ""
            if roll < 0.18:
                code += "-" + _digits(rnd, 4)  # ZIP+4
            if code.startswith("0") and rnd() < 0.3:
                code = code[1:]  # a spreadsheet ate the leading zero
            return code
        if city.country == "IE" and roll < 0.4:
            return ""  # Eircodes are often left out
        if " " in code:
            if roll < 0.15:
                return code.lower()
            if roll < 0.35:
                return code.replace(" ", "")
        return code

    def _country_text(self, country: str) -> str:
        rnd = self.rnd
        if rnd() < 0.02:
            return ""
        text = self.spellings[country].pick(rnd)
        return _pad(rnd, _messy_case(rnd, text, 0.05, 0.05), 0.01)


def _street(rnd, country: str) -> str:
    template, names, suffixes = STREET_PARTS[country]
    street = template.format(
        n=1 + int(rnd() * (2500 if country in ("US", "CA", "AU") else 200)),
        name=_choice(rnd, names),
        suffix=_choice(rnd, suffixes) if suffixes else "",
    )
    units = UNIT_FORMATS.get(country)
    if units and rnd() < 0.15:
        unit = _choice(rnd, units).format(u=_choice(rnd, ("4B", "12", "200", "3", "7A")))
        street = unit + street if unit.endswith((" ", "/")) else street + unit
    return street


def _international(rnd, country: Country, nsn: str, groups) -> str:
    parts = _split_groups(nsn, groups)
    code = country.calling_code
    style = int(rnd() * 6)
    if style == 0:
        return f"+{code} " + " ".join(parts)
    if style == 1:
        return f"+{code}{nsn}"
    if style == 2:
        return f"00{code} " + " ".join(parts)  # as dialled from Europe
    if style == 3:
        return f"+{code}-" + "-".join(parts)
    if style == 4 and country.trunk == "0":
        return f"+{code} (0)" + " ".join(parts)  # the British "+44 (0)20 ..."
    return f"+{code} " + "".join(parts)


def _render_phone(rnd, country: Country, nsn: str, groups) -> str:
    roll = rnd()
    if roll < 0.38:
        return _international(rnd, country, nsn, groups)
    if roll < 0.40:
        return country.calling_code + nsn  # international without the plus
    parts = _split_groups(nsn, groups)
    if country.calling_code == "1":
        return _nanp_national(rnd, parts)
    national = [country.trunk + parts[0], *parts[1:]]
    style = int(rnd() * 4)
    if style == 0:
        return " ".join(national)
    if style == 1:
        return "".join(national)
    if style == 2 and len(national) == 2:
        return "-".join(national)  # "06-12345678"
    if style == 3 and country.trunk:
        return f"({national[0]}) " + " ".join(national[1:])  # "(02) 9876 5432"
    return ".".join(national) if style == 3 else " ".join(national)


def _nanp_national(rnd, parts: list[str]) -> str:
    area, exchange, line = (parts + ["", ""])[:3]
    style = int(rnd() * 7)
    return (
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area}{exchange}{line}",
        f"1-{area}-{exchange}-{line}",
        f"1 ({area}) {exchange}-{line}",
        f"{area} {exchange} {line}",
    )[style]


def _split_groups(nsn: str, groups) -> list[str]:
    """Cut a number into its display groups; a short number gives short groups."""
    parts, start = [], 0
    for size in groups:
        if start < len(nsn):
            parts.append(nsn[start:start + size])
        start += size
    return parts


# --------------------------------------------------------------------------
# Orders and their items.
# --------------------------------------------------------------------------

class OrderFactory:
    """Streams orders and their items: the hot path of the generator.

    Weighted tables are read inline (table[int(rnd() * size)]) rather than
    through Weighted.pick: at millions of draws the call overhead shows.
    """

    def __init__(self, world: World, customers: int, customer_ids: CustomerFactory,
                 verbatim: bool):
        self.world = world
        self.customers = customers
        self.customer_ids = customer_ids
        self.rnd = Random(_stream_seed(world.seed, "orders")).random
        self.permute = _coprime_step(customers)
        self.loyal = max(1, int(customers * LOYAL_SHARE))
        self.dates = [(world.start + timedelta(days=d)).isoformat()
                      for d in range(HISTORY_DAYS + 1)]
        self.clock = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
        self.seconds = [f"{s:02d}" for s in range(60)]
        self.numbers = {n: str(n) for n in range(-20, 21)}
        products = world.products
        ranks = list(range(len(products)))
        Random(_stream_seed(world.seed, "popularity")).shuffle(ranks)
        # Zipf-like popularity, in shuffled order so best sellers are spread
        # over categories rather than being the first SKUs.
        self.product_table = Weighted(
            [(index, 1 / (rank + 1) ** 0.5) for index, rank in enumerate(ranks)],
            resolution=50_000,
        ).table
        # A verbatim CSV sink gets the four product columns pre-quoted as one.
        self.product_rows = [(csv_fields(p.row),) if verbatim else p.row for p in products]
        currencies = {c.currency for c in COUNTRIES.values()}
        # cents[currency][discounted][product], and the same as text.
        self.cents = {
            cur: tuple([p.prices[cur][d] for p in products] for d in (0, 1))
            for cur in currencies
        }
        self.cents_text = {
            cur: tuple([_money(c) for c in per_product] for per_product in pair)
            for cur, pair in self.cents.items()
        }
        self.lines_table = Weighted(((1, 40), (2, 27), (3, 17), (4, 10), (5, 6))).table
        self.quantity_table = Weighted(((1, 82), (2, 12), (3, 4), (4, 1), (6, 1))).table
        self.channel_table = Weighted((("store", 75), ("online", 18), ("phone", 7))).table
        self.status_table = Weighted(
            (("completed", 90), ("cancelled", 5), ("returned", 5))).table

    def run(self, write_order, write_item, orders: int | None, items_target: int | None):
        """Write orders until `orders` are written or `items_target` items are."""
        items = 0
        seq = 0
        while (items < items_target) if items_target else (seq < orders):
            seq += 1
            items += self._one_order(seq, write_order, write_item)
        return items

    def _one_order(self, seq: int, write_order, write_item) -> int:
        rnd = self.rnd
        order_id = f"O{seq:08d}"
        customer_id, store, channel = self._who_and_where(rnd)
        currency = store.currency if rnd() >= 0.01 else store.currency.lower()
        status = self.status_table[int(rnd() * len(self.status_table))]
        ordered_at = self._ordered_at(rnd, store, channel)
        lines = self._lines(rnd, store.currency)
        if status == "completed":
            lines = self._with_returns(rnd, lines)
        store_id = "" if channel == "online" else store.store_id
        row = (order_id, customer_id, ordered_at, store_id, channel, currency, status)
        if seq % MALFORMED_EVERY == MALFORMED_EVERY // 2:
            kind = MALFORMED_ORDER_KINDS[(seq // MALFORMED_EVERY) % len(MALFORMED_ORDER_KINDS)]
            return self._write_malformed(kind, seq, list(row), lines, store.currency,
                                         write_order, write_item)
        write_order(row)
        return self._write_lines(order_id, store.currency, lines, write_item)

    def _who_and_where(self, rnd):
        """Customer (or guest), store and channel of one order.

        Online orders keep the home store for its currency and time zone; the
        caller leaves their store_id empty.
        """
        stores = self.world.stores
        if rnd() < 0.04:  # anonymous walk-in: no loyalty card, no customer
            return "", stores[int(rnd() * len(stores))], "store"
        slot = int(rnd() * (self.loyal if rnd() < LOYAL_ORDER_SHARE else self.customers))
        index = (slot * self.permute) % self.customers
        _city, store = self.world.home_of(index)
        customer_id = self.customer_ids.customer_id(index)
        if rnd() < 0.005:
            customer_id = f" {customer_id} "
        channel = self.channel_table[int(rnd() * len(self.channel_table))]
        if channel == "store":
            roll = rnd()
            if roll < 0.03:
                store = stores[int(rnd() * len(stores))]  # shopping while travelling
            elif roll < 0.15:
                siblings = self.world.stores_by_country[store.city.country]
                store = siblings[int(rnd() * len(siblings))]
        return customer_id, store, channel

    def _ordered_at(self, rnd, store: Store, channel: str) -> str:
        if channel == "store":
            first, span = 9 * 60, 12 * 60
        elif channel == "phone":
            first, span = 8 * 60, 12 * 60
        else:
            first, span = 0, 24 * 60
        limit = HISTORY_DAYS * 1440
        while True:
            if rnd() < RECENT_EXTRA_SHARE:
                day = HISTORY_DAYS - int(rnd() * RECENT_DAYS)
            else:
                day = int(rnd() * (HISTORY_DAYS + 1))
            minute = first + int(rnd() * span)
            utc = day * 1440 + minute - store.day_offsets[day]
            if 0 <= utc < limit:  # the window ends, exclusive, at as_of 00:00 UTC
                break
        second = self.seconds[int(rnd() * 60)]
        roll = rnd()
        if roll < (0.2 if channel == "online" else 0.62):
            return f"{self.dates[day]}T{self.clock[minute]}:{second}{store.offset_texts[day]}"
        utc_day, utc_minute = divmod(utc, 1440)
        stamp = f"{self.dates[utc_day]}T{self.clock[utc_minute]}:{second}"
        return stamp + (".000Z" if roll > 0.95 else "Z")

    def _lines(self, rnd, currency: str) -> list[tuple[int, int, int]]:
        """(product index, quantity, discounted 0/1) per line."""
        products, quantities = self.product_table, self.quantity_table
        count = self.lines_table[int(rnd() * len(self.lines_table))]
        return [
            (products[int(rnd() * len(products))],
             quantities[int(rnd() * len(quantities))],
             1 if rnd() < 0.08 else 0)
            for _ in range(count)
        ]

    def _with_returns(self, rnd, lines):
        """Return lines repeat the product with a negative quantity."""
        roll = rnd()
        if roll < FULL_RETURN_SHARE:  # all brought back; the till kept 'completed'
            return lines + [(p, -q, d) for p, q, d in lines]
        units = sum(quantity for _, quantity, _ in lines)
        if units > 1 and roll < FULL_RETURN_SHARE + PARTIAL_RETURN_DRAW:
            # Part of the order comes back, never all of it.
            product, quantity, discounted = lines[int(rnd() * len(lines))]
            back = 1 + int(rnd() * min(quantity, units - 1))
            return lines + [(product, -back, discounted)]
        return lines

    def _write_lines(self, order_id: str, currency: str, lines, write_item) -> int:
        cents, cents_text = self.cents[currency], self.cents_text[currency]
        rows, numbers = self.product_rows, self.numbers
        number = 0
        for product, quantity, discounted in lines:
            number += 1
            unit = cents_text[discounted][product]
            total = unit if quantity == 1 else _money(quantity * cents[discounted][product])
            write_item((order_id, numbers[number], *rows[product],
                        numbers[quantity], unit, total))
        return number

    def _write_malformed(self, kind, seq, row, lines, currency, write_order, write_item) -> int:
        """Write one order with a deliberate defect (see MALFORMED_ORDER_KINDS).

        row is the order row as a list: order_id, customer_id, ordered_at,
        store_id, channel, currency, status. Returns the items written.
        """
        rnd = self.rnd
        order_id = row[0]
        if kind == "empty_order_id":
            row[0] = ""
            write_order(tuple(row))
            return 0  # its items could not name it either
        if kind == "orphan_items":
            return self._write_lines(order_id, currency, lines, write_item)
        if kind == "completed_without_items":
            row[6] = "completed"
            write_order(tuple(row))
            return 0
        if kind == "bad_timestamp":
            row[2] = _choice(rnd, ("not a date", "2026-13-45T25:61:00Z", "00/00/0000"))
        elif kind == "future_dated":
            row[2] = f"{int(row[2][:4]) + 10}{row[2][4:]}"
        elif kind == "bad_currency":
            row[5] = _choice(rnd, ("XXX", "US$"))
        elif kind == "unknown_customer":
            row[1] = self.customer_ids.customer_id(self.customers + seq)
        elif kind == "negative_completed":
            row[6] = "completed"
            lines = [(product, -abs(quantity), d) for product, quantity, d in lines]
        elif kind == "duplicate_order_id":
            write_order(tuple(row[:6]) + ("cancelled" if row[6] == "completed" else "completed",))
        write_order(tuple(row))
        written = self._write_lines(order_id, currency, lines, write_item)
        if kind == "unreadable_item_line":
            product, _quantity, discounted = lines[0]
            write_item((order_id, str(written + 1), *self.product_rows[product],
                        _choice(rnd, ("two", "1 pc", "?")),
                        self.cents_text[currency][discounted][product], ""))
            written += 1
        return written


def _coprime_step(n: int) -> int:
    """A multiplier coprime with n, so i -> i * step % n permutes 0..n-1."""
    step = 2_654_435_761 % n if n > 1 else 1
    while math.gcd(step, n) != 1:
        step += 1
    return step


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--customers", type=int, required=True, help="number of customers")
    parser.add_argument("--as-of", type=date.fromisoformat, required=True,
                        help="YYYY-MM-DD; orders fall in the 400 days before it (exclusive)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--items-target", type=int, default=None,
                        help="generate orders until this many order items are written")
    args = parser.parse_args(argv)
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    if args.items_target is not None and args.items_target < 1:
        parser.error("--items-target must be at least 1")
    return args


def generate(args: argparse.Namespace) -> dict[str, float]:
    """Write the four tables; returns row counts and phase timings."""
    args.out.mkdir(parents=True, exist_ok=True)
    remove_stale_outputs(args.out, args.format)
    world = World(args.seed, args.as_of)
    stats: dict[str, float] = {}

    sink = CountingSink(open_sink(args.out, "stores", args.format))
    for row in store_rows(world):
        sink.write(row)
    sink.close()
    stats["stores"] = sink.rows

    started = time.perf_counter()
    customers = CustomerFactory(world, args.customers)
    sink = CountingSink(open_sink(args.out, "customers", args.format))
    for index in range(args.customers):
        for row in customers.rows(index):
            sink.write(row)
    sink.close()
    stats["customers"] = sink.rows
    stats["customers_seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    orders_sink = CountingSink(open_sink(args.out, "orders", args.format, verbatim=True))
    items_sink = open_sink(args.out, "order_items", args.format, verbatim=True)
    factory = OrderFactory(world, args.customers, customers, items_sink.verbatim)
    target_orders = None if args.items_target else round(args.customers * ORDERS_PER_CUSTOMER)
    stats["order_items"] = factory.run(
        orders_sink.write, items_sink.write, target_orders, args.items_target)
    orders_sink.close()
    items_sink.close()
    stats["orders"] = orders_sink.rows
    stats["orders_seconds"] = time.perf_counter() - started
    return stats


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    stats = generate(args)
    elapsed = time.perf_counter() - started
    for table in COLUMNS:
        print(f"{table:>12}: {stats[table]:>12,.0f} rows", file=sys.stderr)
    items_rate = stats["order_items"] / max(stats["orders_seconds"], 1e-9)
    print(f"wrote {args.out} ({args.format}) in {elapsed:.1f}s: customers "
          f"{stats['customers_seconds']:.1f}s, orders and items {stats['orders_seconds']:.1f}s "
          f"({items_rate:,.0f} items/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
