"""Performance harness: ``python -m benchmarks`` (or ``make bench``).

Times the two-step login and a verified-session request against plain
``django.contrib.auth`` in the same process and database, and counts their queries.
"""

from __future__ import annotations
