from tests.db_fixtures import database_url

__all__ = ["database_url"]
