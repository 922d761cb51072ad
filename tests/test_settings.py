"""Configuration is validated once, with one line per problem naming the variable."""

from __future__ import annotations

import pytest

from ivr.settings import ConfigError, Settings

GOOD = {
    "DATABASE_URL": "postgresql://ivr@db.internal:5432/ivr",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "TWILIO_AUTH_TOKEN": "s3cret-token-value",
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "PUBLIC_BASE_URL": "https://ivr.example.com/",
}


def problems(environ: dict[str, str], **kwargs: bool) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ, **kwargs)
    return caught.value.problems


def test_a_complete_environment_is_accepted_and_normalised() -> None:
    settings = Settings.from_env(GOOD)

    assert settings.base_url == "https://ivr.example.com"
    assert settings.auth_token == "s3cret-token-value"
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert not settings.dev_mode


def test_the_auth_token_never_appears_in_a_repr() -> None:
    settings = Settings.from_env(GOOD)

    assert "s3cret-token-value" not in repr(settings)
    assert "s3cret-token-value" not in str(settings)


def test_a_malformed_database_url_is_named() -> None:
    found = problems(GOOD | {"DATABASE_URL": "mysql://root@localhost/ivr"})

    assert len(found) == 1
    assert found[0].startswith("config error: DATABASE_URL: must be a Postgres URL")


def test_each_problem_gets_its_own_line() -> None:
    found = problems(GOOD | {"REDIS_URL": "http://x", "TWILIO_ACCOUNT_SID": "nope", "LOG_LEVEL": "LOUD"})

    assert sorted(line.split(":")[1].strip() for line in found) == [
        "LOG_LEVEL",
        "REDIS_URL",
        "TWILIO_ACCOUNT_SID",
    ]


def test_twilio_settings_are_required_outside_dev_mode() -> None:
    found = problems({key: v for key, v in GOOD.items() if key not in ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL")})

    assert found == [
        "config error: settings: required (set IVR_DEV=1 for a local development default): "
        "TWILIO_AUTH_TOKEN, PUBLIC_BASE_URL"
    ]


def test_storage_only_commands_do_not_need_twilio_settings() -> None:
    settings = Settings.from_env({"DATABASE_URL": GOOD["DATABASE_URL"]}, need_twilio=False)

    assert settings.redis_url is None


def test_a_public_base_url_with_a_query_is_refused() -> None:
    found = problems(GOOD | {"PUBLIC_BASE_URL": "https://ivr.example.com/?x=1"})

    assert found == ["config error: PUBLIC_BASE_URL: must not have a query or fragment"]


def test_unset_storage_urls_mean_the_embedded_default() -> None:
    settings = Settings.from_env({k: v for k, v in GOOD.items() if "_URL" not in k or k == "PUBLIC_BASE_URL"})

    assert settings.database_url is None and settings.redis_url is None


def test_passwords_in_urls_never_show_in_repr_or_str() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://ivr_app:db-secret@db.internal/ivr",
            "MIGRATION_DATABASE_URL": "postgresql://ivr_owner:owner-secret@db.internal/ivr",
            "REDIS_URL": "redis://:redis-secret@cache.internal:6379/0",
            "TWILIO_AUTH_TOKEN": "t" * 32,
            "PUBLIC_BASE_URL": "https://ivr.example.com",
        }
    )
    for shown in (repr(settings), str(settings), f"{settings!r}"):
        assert not any(word in shown for word in ("db-secret", "owner-secret", "redis-secret", "t" * 32))
        assert "postgresql://ivr_app:***@db.internal/ivr" in shown and "redis://:***@cache.internal" in shown
    assert settings.database_url == "postgresql://ivr_app:db-secret@db.internal/ivr"  # the value itself is intact


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWILIO_ACCOUNT_SID", "AC" + "a" * 32 + "\n"),
        ("RATE_LIMIT_NAMESPACE", "blue\n"),
        ("TWILIO_WEBHOOK_SHARED_KEY_ID", "key\n"),
    ],
)
def test_a_value_with_a_trailing_newline_is_refused(name: str, value: str) -> None:
    assert any(name in problem for problem in problems(GOOD | {name: value}))
