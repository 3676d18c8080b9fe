"""compose.yaml, the Dockerfile and .env.example agree with core/settings.py.

No Docker and no database: the files are parsed and the app's environment is resolved the way
`docker compose` interpolates it, then read by the real Settings class.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.parts import half_configured, parts
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

FIELDS = frozenset(name.upper() for name in Settings.model_fields)
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (a container listens beyond its loopback)

# Values compose.yaml decides itself (literal, not taken from .env).
COMPOSE_DECIDES = {
    "ENVIRONMENT": "production",
    "DATA_DIR": "/app/data",
    "REDIS_URL": "redis://redis:6379/0",
    "HTTP_HOST": ALL_INTERFACES,
    "HTTP_PORT": "8080",
    "TELEGRAM_MODE": "webhook",
    "MAX_MODE": "webhook",
    "WHATSAPP_GATEWAY_URL": "http://waha:3000",
    "MARKETPLACE_ALLOW_UNSIGNED": "false",
}
# Built from the compose-only PostgreSQL variables.
POSTGRES_VARS = frozenset({"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"})
# Variables only compose.yaml reads (documented as such in .env.example).
COMPOSE_ONLY = POSTGRES_VARS
# `${VAR:?...}`: `docker compose up` refuses to start without them.
# Webhook mode and the gateway URL are forced, so both chat channels need their secrets: a
# deploy without them would have both channels off and /health 200.
REQUIRED = frozenset(
    {
        "SECRET_KEY",
        "PUBLIC_BASE_URL",
        "POSTGRES_PASSWORD",
        "TELEGRAM_WEBHOOK_SECRET",
        "WHATSAPP_GATEWAY_API_KEY",
        "WHATSAPP_WEBHOOK_HMAC_KEY",
    }
)
# Sample values for the required variables.
SAMPLES = {
    "SECRET_KEY": "s" * 48,
    "PUBLIC_BASE_URL": "https://bot.example.com",
    "POSTGRES_PASSWORD": "pw",
    "TELEGRAM_WEBHOOK_SECRET": "t" * 32,
    "WHATSAPP_GATEWAY_API_KEY": "k" * 32,
    "WHATSAPP_WEBHOOK_HMAC_KEY": "h" * 32,
}
# Production defaults compose.yaml picks that differ from the Settings defaults.
COMPOSE_DEFAULTS = {"LOG_FORMAT": "json"}
WAHA_MIN_VERSION = (2026, 6, 1)

_REF = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(Exception):
    """A `${VAR:?msg}` variable is unset or empty (`${VAR?msg}`: unset)."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Resolve `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?msg}`, `${VAR?msg}`,
    `$VAR`, `$$` as compose does (compose-go's template package): a default and an error
    message are themselves interpolated, and a missing required variable stops with compose's
    own sentence, `required variable VAR is missing a value: msg`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        empty = not value if op in (":-", ":?") else value is None
        if op and op.endswith("?") and empty:
            message = interpolate(arg, env)
            raise MissingVariable(
                f"required variable {name} is missing a value" + (f": {message}" if message else "")
            )
        if op and op.endswith("-") and empty:
            return interpolate(arg, env)
        return value or ""

    return _REF.sub(replace, text)


def compose_config(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Every service's environment after interpolation, as `docker compose config` would
    resolve it; raises MissingVariable like compose stops."""
    return {
        name: {key: interpolate(value, env) for key, value in environment(svc).items()}
        for name, svc in load_compose()["services"].items()
    }


def header_comment() -> str:
    """The comment block at the top of compose.yaml."""
    lines = []
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def references(text: str) -> set[str]:
    return {m.group("name") or m.group("bare") for m in _REF.finditer(text) if m.group(0) != "$$"}


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = load_compose()["services"]
    assert name in services, f"compose.yaml has no service {name!r}"
    return services[name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def resolved_app_env(env: dict[str, str]) -> dict[str, str]:
    return {key: interpolate(value, env) for key, value in environment(service("app")).items()}


def settings_from(env: dict[str, str]) -> Settings:
    """Settings from exactly these variables (no .env, nothing from the process)."""
    values: dict[str, Any] = {name.lower(): value for name, value in env.items() if name in FIELDS}
    assert set(values) == set(Settings.model_fields)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def default(name: str) -> Any:
    return Settings.model_fields[name.lower()].get_default(call_default_factory=True)


def volume_mounts(svc: dict[str, Any]) -> dict[str, str]:
    """target -> source of the service's volumes (short syntax)."""
    mounts = {}
    for item in svc.get("volumes") or []:
        source, target = str(item).split(":")[:2]
        mounts[target] = source
    return mounts


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    result = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def dockerfile(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def command_text(args: str) -> str:
    """A CMD/ENTRYPOINT in exec form (JSON) or shell form as one string."""
    if args.startswith("["):
        return " ".join(yaml.safe_load(args))
    return args


def env_example() -> list[tuple[int, str, str]]:
    """(line index, name, value) of each assignment in .env.example."""
    found = []
    for index, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()):
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            found.append((index, match.group(1), value))
    return found


# --- compose.yaml: the app ---------------------------------------------------------------------


def test_every_setting_is_passed_to_the_app() -> None:
    env = environment(service("app"))
    assert FIELDS - env.keys() == set(), "settings not passed to the app"
    assert env.keys() - FIELDS == set(), "app variables that are not settings"


def test_settings_from_env_are_interpolated_from_their_own_name() -> None:
    env = environment(service("app"))
    for name in FIELDS - COMPOSE_DECIDES.keys() - {"DATABASE_URL"}:
        assert env[name].startswith("${") and env[name].endswith("}"), name
        assert references(env[name]) == {name}, name


def test_compose_decides_the_production_values() -> None:
    env = environment(service("app"))
    for name, value in COMPOSE_DECIDES.items():
        assert env[name] == value, name
    assert references(env["DATABASE_URL"]) == POSTGRES_VARS
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["DATABASE_URL"].startswith("postgres://")


@pytest.mark.parametrize("blank", [False, True], ids=["unset", "set-empty"])
def test_app_environment_gives_valid_production_settings(blank: bool) -> None:
    """`FOO=` in .env must behave like no FOO at all (`${FOO:-default}`, not `${FOO-default}`)."""
    env = dict.fromkeys(FIELDS | COMPOSE_ONLY, "") if blank else {}
    settings = settings_from(resolved_app_env(env | SAMPLES))
    assert settings.environment == "production"
    assert settings.telegram_mode == "webhook"
    assert settings.http_host == ALL_INTERFACES
    assert settings.http_port == 8080
    assert settings.uses_postgres
    assert settings.db_url == "postgres://salonbot:pw@postgres:5432/salonbot"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.whatsapp_gateway_url == "http://waha:3000"
    assert settings.marketplace_allow_unsigned is False
    assert settings.public_base_url == SAMPLES["PUBLIC_BASE_URL"]
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SAMPLES["SECRET_KEY"]
    # What .env leaves unset falls back to the Settings default (or compose's production one).
    for name in FIELDS - COMPOSE_DECIDES.keys() - REQUIRED - {"DATABASE_URL"}:
        expected = COMPOSE_DEFAULTS.get(name, default(name))
        assert getattr(settings, name.lower()) == expected, name


def test_env_example_as_dotenv_gives_valid_production_settings() -> None:
    env = {name: value for _, name, value in env_example()}
    settings = settings_from(resolved_app_env(env | SAMPLES))
    assert settings.environment == "production"
    assert settings.telegram_mode == "webhook"
    assert settings.uses_postgres


def test_required_variables() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = {m.group("name") for m in _REF.finditer(text) if m.group("op") in (":?", "?")}
    assert required == REQUIRED
    # `:?`, not `?`: `FOO=` in .env is as missing as no FOO at all.
    ops = {m.group("op") for m in _REF.finditer(text) if m.group("name") in REQUIRED}
    assert ops == {":?"}
    compose_config(SAMPLES)  # all of them given: nothing missing


@pytest.mark.parametrize("blank", [False, True], ids=["unset", "set-empty"])
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_names_each_missing_required_variable(name: str, blank: bool) -> None:
    env = {key: value for key, value in SAMPLES.items() if key != name}
    if blank:
        env[name] = ""
    with pytest.raises(MissingVariable) as missing:
        compose_config(env)
    message = str(missing.value)
    assert message.startswith(f"required variable {name} is missing a value: set {name} in .env")


def test_header_lists_every_required_variable() -> None:
    header = header_comment()
    for name in REQUIRED:
        assert re.search(rf"^#\s+{name}\s+\S", header, re.MULTILINE), f"{name} not in the header"


def test_a_deploy_that_follows_compose_has_no_half_configured_part() -> None:
    """Webhook mode and the gateway are forced: with the required variables and the tokens
    given, Telegram and WhatsApp can both run."""
    env = SAMPLES | {
        "TELEGRAM_BOT_TOKEN": "123456789:" + "A" * 35,
        "YCLIENTS_PARTNER_TOKEN": "partner",
        "MAX_BOT_TOKEN": "max-token",
        "MAX_WEBHOOK_SECRET": "max-webhook-secret-0123456789",
    }
    settings = settings_from(resolved_app_env(env))
    assert half_configured(settings) == []
    assert all(part.enabled for part in parts(settings))


def test_app_runs_migrations_then_serve() -> None:
    app = service("app")
    commands = [app[key] for key in ("entrypoint", "command") if key in app]
    commands += [command_text(args) for args in dockerfile("ENTRYPOINT") + dockerfile("CMD")]
    text = " ".join(c if isinstance(c, str) else " ".join(c) for c in commands)
    assert re.search(r"salonbot migrate\s*&&\s*(exec\s+)?salonbot serve", text), text
    assert environment(app)["TELEGRAM_MODE"] == "webhook"


def test_app_service_shape() -> None:
    app = service("app")
    assert app["build"] in (".", {"context": "."})
    env_file = app["env_file"]
    assert env_file == ".env" or ".env" in env_file
    assert app["ports"] == ["127.0.0.1:8080:8080"]
    assert app["restart"] == "unless-stopped"
    assert "/health" in " ".join(app["healthcheck"]["test"])
    depends = app["depends_on"]
    assert set(depends) >= {"postgres", "redis", "waha"}
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_data_dir_is_the_app_volume() -> None:
    data_dir = COMPOSE_DECIDES["DATA_DIR"]
    assert data_dir in volume_mounts(service("app"))
    assert any(f"DATA_DIR={data_dir}" in args.split() for args in dockerfile("ENV"))
    assert any(data_dir in args for args in dockerfile("VOLUME"))


# --- compose.yaml: the other services ----------------------------------------------------------


def test_postgres_service() -> None:
    pg = service("postgres")
    assert str(pg["image"]).startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "/var/lib/postgresql/data" in volume_mounts(pg)
    env = environment(pg)
    for name in POSTGRES_VARS:
        assert references(env[name]) == {name}, name


def test_redis_service() -> None:
    redis = service("redis")
    assert str(redis["image"]).startswith("redis:7")
    assert "healthcheck" in redis


def test_waha_service() -> None:
    waha = service("waha")
    repo, _, tag = str(waha["image"]).partition(":")
    assert repo == "devlikeapro/waha"
    assert "gows" in tag.lower(), "the tag must name the GOWS engine"
    version = re.search(r"(\d{4})\.(\d+)\.(\d+)", tag)
    assert version, f"the WAHA tag {tag!r} is not pinned to a version"
    assert tuple(int(part) for part in version.groups()) >= WAHA_MIN_VERSION
    assert "ports" not in waha, "WAHA must never be published to the host"
    assert [str(port) for port in waha.get("expose", ["3000"])] == ["3000"]
    env = environment(waha)
    assert env["WHATSAPP_DEFAULT_ENGINE"] == "GOWS"
    assert references(env["WAHA_API_KEY"]) == {"WHATSAPP_GATEWAY_API_KEY"}
    assert (
        interpolate(env["WAHA_API_KEY"], SAMPLES)
        == resolved_app_env(SAMPLES)["WHATSAPP_GATEWAY_API_KEY"]
    )
    assert volume_mounts(waha).get("/app/.sessions")


def test_named_volumes_are_declared() -> None:
    declared = set(load_compose().get("volumes") or {})
    used = {
        source
        for svc in load_compose()["services"].values()
        for source in volume_mounts(svc).values()
        if not source.startswith((".", "/", "~", "$"))
    }
    assert used, "no named volumes"
    assert used <= declared


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_build() -> None:
    assert dockerfile("FROM")[0].startswith("python:3.11-slim")
    assert dockerfile("WORKDIR")[-1] == "/app"
    runs = " ".join(dockerfile("RUN"))
    assert "pybabel compile -d locales -D messages" in runs
    # Editable: core/ stays in /app next to locales/ (core/i18n.py looks there).
    assert re.search(r"pip install\b[^&]*\s-e \.", runs), runs
    assert any(args.split()[0] == "locales" for args in dockerfile("COPY"))
    users = dockerfile("USER")
    assert users and users[-1] not in ("root", "0", "0:0")
    assert "8080" in " ".join(dockerfile("EXPOSE")).split()
    healthcheck = " ".join(dockerfile("HEALTHCHECK"))
    assert "python" in healthcheck and "/health" in healthcheck
    assert "curl" not in healthcheck
    assert any("HTTP_HOST=0.0.0.0" in args.split() for args in dockerfile("ENV"))


# --- .env.example ------------------------------------------------------------------------------


def test_env_example_names_every_setting_and_nothing_else() -> None:
    names = [name for _, name, _ in env_example()]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert FIELDS - set(names) == set(), "settings missing from .env.example"
    assert set(names) - FIELDS - COMPOSE_ONLY == set(), "unknown variables in .env.example"
    assert set(names) >= COMPOSE_ONLY


def test_env_example_has_a_comment_above_each_variable() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, name, _ in env_example():
        above = lines[index - 1] if index else ""
        assert above.startswith("# ") and len(above) > 3, f"{name}: no comment line above it"
        assert not re.match(r"^#\s*[A-Z_][A-Z0-9_]*=", above), f"{name}: comment is a variable"
        if name in COMPOSE_ONLY:
            assert "[compose.yaml only]" in above, f"{name}: not marked as compose.yaml only"
        else:
            assert "compose.yaml only" not in above, name
    for line in lines:
        assert not re.match(r"^#\s*[A-Z_][A-Z0-9_]*=", line), f"commented-out variable: {line}"


def test_compose_reads_only_variables_documented_in_env_example() -> None:
    documented = {name for _, name, _ in env_example()}
    assert references(COMPOSE.read_text(encoding="utf-8")) <= documented


def test_env_example_is_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied to .env as it is, it changes nothing: every value is the default, tokens empty."""
    for name in FIELDS:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    for name in FIELDS:
        assert getattr(settings, name.lower()) == default(name), name
    assert not settings.uses_postgres
    assert settings.telegram_mode == "polling"
    secrets = ("SECRET_KEY", "TELEGRAM_BOT_TOKEN", "YCLIENTS_PARTNER_TOKEN")
    assert all(value == "" for _, name, value in env_example() if name in secrets)


def test_env_example_values_survive_shell_parsing() -> None:
    """Values stay one word for `set -a; . ./.env` (the cron line is quoted)."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, name, value in env_example():
        assert shlex.split(lines[index]) == [f"{name}={value}"], name
