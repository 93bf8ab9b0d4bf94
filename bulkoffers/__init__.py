"""bulkoffers: bulk-create Adobe Offer Library fallback offers from spreadsheets.

The library API behind the `bulkoffers` command. Heavy modules (pandas, aiohttp) load lazily, so
`import bulkoffers` and `bulkoffers --help` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
