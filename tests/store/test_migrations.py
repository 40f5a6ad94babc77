from corral.store.sql import make_engine
from corral.store.sql.migrate import HEAD, database_revision, head_revision, upgrade_database


def test_the_pinned_head_is_alembics_head() -> None:
    assert head_revision() == HEAD


def test_an_empty_database_has_no_revision_until_upgraded(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert database_revision(engine) is None
        assert upgrade_database(engine) == HEAD
        assert database_revision(engine) == HEAD
        assert upgrade_database(engine) == HEAD
    finally:
        engine.dispose()
