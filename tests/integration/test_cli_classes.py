"""``clawbeat classes set``: the settings named change, the others keep their values."""

from __future__ import annotations

import asyncio

import pytest

from monitor.ops import config_version
from monitor.store import repository
from tests.harness.db_fixtures import open_store
from tests.integration.test_cli import clawbeat


async def stored(url: str, name: str) -> tuple[object, ...] | None:
    async with open_store(url) as sessions, sessions() as session:
        cls = await repository.get_class(session, name=name)
        if cls is None:
            return None
        return (cls.interval, cls.grace, cls.missed_limit, cls.lost_after, cls.description)


async def version(url: str) -> str | None:
    async with open_store(url) as sessions, sessions() as session:
        return await config_version.read(session)


def test_classes_set_changes_only_the_settings_named(database_url: str) -> None:
    env = {"CLAWBEAT_DATABASE_URL": database_url}

    def class_set(*args: str) -> str:
        result = clawbeat("classes", "set", *args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    created = class_set("pumps", "--interval", "10", "--grace", "3", "--missed-limit", "5",
                        "--lost-after", "600", "--description", "water pumps")  # fmt: skip
    assert "class 'pumps' created" in created
    assert asyncio.run(stored(database_url, "pumps")) == (10.0, 3.0, 5, 600.0, "water pumps")
    before = asyncio.run(version(database_url))

    saved = class_set("pumps", "--interval", "5")
    assert asyncio.run(stored(database_url, "pumps")) == (5.0, 3.0, 5, 600.0, "water pumps")
    assert "interval 5.0, grace 3, missed limit 5, lost after 600" in saved
    # Announced, so a running monitor reloads it.
    assert asyncio.run(version(database_url)) != before

    class_set("pumps", "--interval", "device", "--lost-after", "never")
    assert asyncio.run(stored(database_url, "pumps")) == (None, 3.0, 5, None, "water pumps")
    class_set("pumps", "--missed-limit", "2", "--description", "")
    assert asyncio.run(stored(database_url, "pumps")) == (None, 3.0, 2, None, "")

    # The built-in class too: a new grace keeps its missed limit and lost-after.
    default_before = asyncio.run(stored(database_url, "default"))
    assert default_before is not None
    class_set("default", "--grace", "4")
    assert asyncio.run(stored(database_url, "default")) == (
        default_before[0], 4.0, *default_before[2:]
    )  # fmt: skip

    # A new class starts from the defaults for what it does not name.
    class_set("fresh", "--grace", "1")
    assert asyncio.run(stored(database_url, "fresh")) == (None, 1.0, 3, 86400.0, "")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--grace", "nan"), "grace"),
        (("--grace", "-1"), "grace"),
        (("--missed-limit", "0"), "missed_limit"),
        (("--interval", "0"), "interval"),
        (("--interval", "inf"), "interval"),
        (("--lost-after", "0"), "lost_after"),
        (("--lost-after", "soon"), "--lost-after"),
        (("--description", "x" * 1001), "description"),
    ],
)
def test_classes_set_refuses_bad_settings_and_changes_nothing(
    database_url: str, args: tuple[str, ...], problem: str
) -> None:
    env = {"CLAWBEAT_DATABASE_URL": database_url}
    assert clawbeat("classes", "set", "pumps", "--grace", "3", env=env).returncode == 0
    before = asyncio.run(stored(database_url, "pumps"))
    result = clawbeat("classes", "set", "pumps", *args, env=env)
    assert result.returncode == 2
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert asyncio.run(stored(database_url, "pumps")) == before
