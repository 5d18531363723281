"""Settings are read once from the environment; bad values name their variable."""
from __future__ import annotations

from pathlib import Path

import pytest

from livetalk.config import DEFAULT_LIVE_MODEL, ConfigError, Settings


def test_defaults_run_the_whole_product_locally():
    """With nothing configured: emulated Gemini, local storage, port 8080."""
    settings = Settings.from_env({})
    assert settings.emulated and settings.storage_kind == "local"
    assert settings.port == 8080 and settings.gemini_live_model == DEFAULT_LIVE_MODEL
    assert settings.data_dir == Path("data")


def test_real_services_when_configured():
    """A key and a bucket switch to the real Gemini and Cloud Storage."""
    settings = Settings.from_env({"GEMINI_API_KEY": "k", "GCS_BUCKET_NAME": "b", "PORT": "9000",
                                  "GEMINI_VOICE": "Aoede", "ALLOWED_ORIGINS": "https://a.example/, https://b.example"})
    assert not settings.emulated and settings.storage_kind == "gcs" and settings.port == 9000
    assert settings.gemini_voice == "Aoede"
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"PORT": "eighty"}, "PORT"), ({"PORT": "0"}, "PORT"), ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
     ({"REQUIRE_TICKET": "maybe"}, "REQUIRE_TICKET"), ({"SESSION_MAX_SECONDS": "x"}, "SESSION_MAX_SECONDS"),
     ({"GEMINI_API_VERSION": "v9"}, "GEMINI_API_VERSION"), ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
     ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS")],
)
def test_bad_values_name_their_variable(env, variable):
    """A malformed value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "fmt"),
    [({}, "text"), ({"K_SERVICE": "livetalk"}, "json"), ({"LOG_FORMAT": "json"}, "json"),
     ({"K_SERVICE": "livetalk", "LOG_FORMAT": "TEXT"}, "text")],
)
def test_logs_are_json_on_cloud_run_and_readable_elsewhere(env, fmt):
    """JSON by default on Cloud Run (K_SERVICE is set there), text on a terminal; LOG_FORMAT decides anywhere."""
    assert Settings.from_env(env).log_format == fmt


def test_settings_are_frozen():
    """Settings cannot be changed after they are read."""
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def test_learner_settings_have_safe_defaults_and_iap_needs_an_audience():
    """Anonymous learners by default with 2 conversations and an hour a day; IAP without IAP_AUDIENCE is an error."""
    default = Settings.from_env({})
    assert (default.auth_mode, default.learner_max_concurrent, default.learner_daily_s) == ("anonymous", 2, 3600.0)
    assert default.iap_keys_url == "https://www.gstatic.com/iap/verify/public_key-jwk"
    iap = Settings.from_env({"AUTH_MODE": "IAP", "IAP_AUDIENCE": "/projects/1/global/backendServices/2",
                             "ADMIN_EMAILS": "Boss@Example.com, ops@example.com  it@example.com",
                             "LEARNER_DAILY_SECONDS": "120", "IAP_KEYS_URL": "http://127.0.0.1:1/keys"})
    assert iap.auth_mode == "iap" and iap.learner_daily_s == 120.0 and iap.iap_keys_url == "http://127.0.0.1:1/keys"
    assert iap.admin_emails == ("boss@example.com", "ops@example.com", "it@example.com")
    for env, variable in [({"AUTH_MODE": "iap"}, "IAP_AUDIENCE"), ({"AUTH_MODE": "oauth"}, "AUTH_MODE"),
                          ({"LEARNER_MAX_CONCURRENT": "0"}, "LEARNER_MAX_CONCURRENT"),
                          ({"LEARNER_DAILY_SECONDS": "an hour"}, "LEARNER_DAILY_SECONDS")]:
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env(env)
