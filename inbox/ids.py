"""Id bounds: integer primary keys are 32-bit on PostgreSQL, so a larger id cannot name a row.

Checking before querying turns such an id into a plain 404 instead of a database error.
"""

MAX_ID = 2**31 - 1
