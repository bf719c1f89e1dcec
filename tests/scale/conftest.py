from tests.db_fixtures import database_url
from tests.server.conftest import night

__all__ = ["database_url", "night"]
