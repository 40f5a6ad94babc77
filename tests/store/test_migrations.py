import multiprocessing
import time

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


def _upgrade_in_a_process(url_and_start: tuple[str, float]) -> str:
    url, start = url_and_start
    time.sleep(max(0.0, start - time.time()))  # all begin together, once imported
    return upgrade_database(url)


def test_processes_upgrading_one_new_database_at_once_all_succeed(database_url: str) -> None:
    # `corral server --workers N` starts N processes that each upgrade the database they share.
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        start = time.time() + 3
        revisions = pool.map(_upgrade_in_a_process, [(database_url, start)] * 4)
    assert revisions == [HEAD] * 4
    engine = make_engine(database_url)
    try:
        assert database_revision(engine) == HEAD
    finally:
        engine.dispose()
