"""Every table clawbeat keeps, in one metadata: the store's and the alerting's.

The alerting tables live with the alerting code (``monitor/alerts/models.py``), which
builds on the store's ``Base``; the store knows nothing of them. Whoever needs the whole
schema at once (alembic's autogenerate, the schema test) imports it from here, so the
store never has to import upwards to make its metadata complete.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import MetaData

from monitor.alerts import models as _alert_models  # noqa: F401 - registers the alerting tables
from monitor.store.models import Base

metadata: Final[MetaData] = Base.metadata
