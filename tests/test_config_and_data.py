"""Configuration, message catalogues, forms and the knowledge base as data."""

from __future__ import annotations

import socket
from datetime import datetime, time
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config, ConfigError, config_warnings, load_config, unknown_variables
from conversations.catalog import default_catalog
from conversations.faq import FaqError, default_faq_text, parse_faq
from conversations.forms import FormError, load_forms, parse_form
from storage.db import Database, DatabaseFolderMissing
from tests.conftest import cli_env, free_port, run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = ROOT / "config.example.toml"
    config = load_config(example, {})
    text = example.read_text("utf-8")
    for section, model in config:
        for key in type(model).model_fields:
            assert f"{key} =" in text or f"# {key} =" in text, f"[{section}] {key} undocumented"


def test_the_example_config_sets_the_defaults() -> None:
    """Copied as it is (its first comment says to), it behaves like no file at all: a demo
    on SQLite keeps its generated keys rather than refusing to start without them."""
    example = load_config(ROOT / "config.example.toml", {}).model_dump()
    assert example == Config().model_dump()


def test_config_check_warns_of_staff_alerts_that_cannot_be_mailed(tmp_path: Path) -> None:
    env = cli_env(tmp_path, TAWASUL_STAFF_NOTIFY_EMAILS="duty@example.org")
    checked = run_cli(tmp_path, "config", "check", env=env)
    assert "warning: staff.notify_emails" in checked.stderr and "OK" in checked.stdout
    env.update(TAWASUL_EMAIL_SMTP_HOST="mail.example.org", TAWASUL_EMAIL_ADDRESS="bot@example.org")
    assert "warning" not in run_cli(tmp_path, "config", "check", env=env).stderr


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\n[database]\nurl = "sqlite+aiosqlite:///a.db"\n')
    config = load_config(
        path,
        {
            "TAWASUL_DATABASE_URL": "postgresql+asyncpg://u@h/db",
            "TAWASUL_HOURS_WORKDAYS": "sunday, monday",
        },
    )
    assert config.server.port == 9000
    assert config.database.url == "postgresql+asyncpg://u@h/db"
    assert config.hours.workdays == ["sunday", "monday"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key 'server.prot'"),
        ("[server]\nport = 'x'\n", "server.port"),
        ("[hours]\nworkdays = ['funday']\n", "funday"),
        ("[hours]\ntimezone = 'Mars/Olympus'\n", "Mars/Olympus"),
        ("[hours]\nopens = 09:00:00\ncloses = 09:00:00\n", "after midnight"),
        ("[database]\nurl = 'sqlite:///x.db'\n", "async driver"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_wrong_keys_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, {})
    assert message in str(info.value)


def test_config_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[server]\nport = 8081\n")
    assert "OK" in run_cli(tmp_path, "--config", str(good), "config", "check").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nresponse_days = 0\n")
    result = run_cli(tmp_path, "--config", str(bad), "config", "check", check=False)
    assert result.returncode == 1 and "engine.response_days" in result.stderr
    env = cli_env(tmp_path, TAWASUL_SERVER_PORT="high")
    result = run_cli(tmp_path, "config", "check", env=env, check=False)
    assert result.returncode == 1 and "server.port" in result.stderr


@pytest.mark.parametrize(
    ("lang", "n", "said"),
    [
        ("ar", 1, "ملف واحد"),
        ("ar", 2, "ملفان"),
        ("ar", 3, "3 ملفات"),
        ("ar", 11, "11 ملفًا"),
        ("ar", 100, "100 ملف"),
        ("ar", 103, "103 ملفات"),
        ("en", 1, "1 file"),
        ("en", 2, "2 files"),
        ("en", 12, "12 files"),
    ],
)
def test_a_count_takes_the_grammatical_number(lang: str, n: int, said: str) -> None:
    assert default_catalog().counted(lang, "attachment.count", n) == said


@pytest.mark.parametrize(
    ("lang", "n", "said"),
    [
        ("ar", 1, "دقيقة واحدة"),
        ("ar", 2, "دقيقتين"),
        ("ar", 10, "10 دقائق"),
        ("ar", 15, "15 دقيقة"),
        ("ar", 60, "60 دقيقة"),
        ("en", 1, "1 minute"),
        ("en", 10, "10 minutes"),
    ],
)
def test_minutes_take_the_grammatical_number(lang: str, n: int, said: str) -> None:
    """ "Try again in 10 minutes" (the web chat's limit) read «بعد 10 دقيقة»."""
    assert default_catalog().minutes(lang, n) == said
    sentence = default_catalog().text(lang, "security.sessions", minutes=said)
    assert sentence.count(said) == 1 and "دقيقة دقيقة" not in sentence


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    catalog = default_catalog()
    assert catalog.keys("ar") == catalog.keys("en")
    for key in catalog.keys("ar"):
        assert catalog.placeholders("ar", key) == catalog.placeholders("en", key), key


def test_builtin_forms_are_bilingual() -> None:
    forms = load_forms()
    assert set(forms) == {
        "support_request",
        "volunteer",
        "complaint",
        "update_data",
        "data_request",
    }
    support = forms["support_request"]
    assert support.declaration and support.kind == "request"
    assert support.intro["ar"] and support.intro["en"]
    for form in forms.values():
        for field in form.fields:
            assert field.prompt.get("ar") and field.prompt.get("en"), (form.id, field.name)


def test_a_form_file_overrides_the_builtin_one(tmp_path: Path) -> None:
    (tmp_path / "volunteer.toml").write_text(
        '[form]\nid = "volunteer"\ntitle.ar = "تطوع"\nkind = "ticket"\n'
        '[[fields]]\nname = "full_name"\ntype = "text"\nprompt.ar = "الاسم؟"\n',
        encoding="utf-8",
    )
    forms = load_forms(tmp_path)
    assert [f.name for f in forms["volunteer"].fields] == ["full_name"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[form]\ntitle.ar = "x"\n', "a [form] table with an id"),
        (
            '[form]\nid = "f"\ntitle.ar = "x"\n[[fields]]\nname = "a"\ntype = "colour"\n'
            'prompt.ar = "?"\n',
            "type must be one of",
        ),
        (
            '[form]\nid = "f"\ntitle.ar = "x"\n[[fields]]\nname = "a"\ntype = "choice"\n'
            'prompt.ar = "?"\n',
            "needs options",
        ),
        (
            '[form]\nid = "f"\ntitle.ar = "x"\n[[fields]]\nname = "a"\ntype = "text"\n'
            'prompt.ar = "?"\nwhen = { field = "later", equals = "x" }\n',
            "earlier field",
        ),
        (
            '[form]\nid = "f"\ntitle.ar = "x"\ndeclaration = true\n[[fields]]\nname = "a"\n'
            'type = "text"\nprompt.ar = "?"\n',
            "declaration_text",
        ),
        (
            '[form]\nid = "f"\ntitle.ar = "x"\nreference_prefix = "sr1"\n[[fields]]\nname = "a"\n'
            'type = "text"\nprompt.ar = "?"\n',
            "reference_prefix must be 2 to 8 capital Latin letters",
        ),
    ],
)
def test_broken_forms_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(FormError) as info:
        parse_form(text, "my_form.toml")
    assert "my_form.toml" in str(info.value) and message in str(info.value)


def test_default_knowledge_base_is_large_and_bilingual() -> None:
    entries = parse_faq(default_faq_text(), "faq.toml")
    assert len(entries) >= 40
    for entry in entries:
        assert entry.answers.get("ar") and entry.answers.get("en"), entry.id
        assert entry.questions.get("ar") and entry.questions.get("en"), entry.id


def test_broken_knowledge_base_is_refused() -> None:
    with pytest.raises(FaqError, match="duplicate id"):
        parse_faq(
            '[[faq]]\nid = "a"\nquestions.ar = ["س"]\nanswer.ar = "ج"\n'
            '[[faq]]\nid = "a"\nquestions.ar = ["س"]\nanswer.ar = "ج"\n',
            "kb.toml",
        )


def test_night_hours_that_close_after_midnight() -> None:
    """Ramadan's night shift, 22:00 to 02:00: open from Sunday 22:00 to Monday 02:00, and the
    shift opening Thursday night runs into Friday although Friday is not a working day."""
    from conversations.hours import WorkingHours

    hours = WorkingHours(opens=time(22, 0), closes=time(2, 0))
    riyadh = ZoneInfo("Asia/Riyadh")

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=riyadh)  # 22 Nov 2026 is a Sunday

    assert not hours.is_open(at(22, 21, 59))
    assert hours.is_open(at(22, 22, 0)) and hours.is_open(at(23, 1, 30))
    assert not hours.is_open(at(23, 2, 0)) and not hours.is_open(at(23, 12, 0))
    assert hours.is_open(at(27, 1, 0))  # Friday 01:00: Thursday's shift
    assert not hours.is_open(at(27, 22, 30)) and not hours.is_open(at(28, 1, 0))
    assert not hours.is_open(at(22, 1, 0))  # Sunday 01:00: Saturday had no shift
    assert hours.next_opening(at(23, 1, 30)) == at(23, 1, 30)
    assert hours.next_opening(at(23, 3, 0)) == at(23, 22, 0)
    assert hours.next_opening(at(27, 3, 0)) == at(29, 22, 0)  # Friday: next is Sunday night
    day = WorkingHours()
    assert day.is_open(at(22, 9, 0)) and not day.is_open(at(22, 15, 0))


def test_a_forms_handoff_condition_must_name_one_of_its_fields() -> None:
    base = (
        '[form]\nid = "t"\ntitle.ar = "ت"\nhandoff = true\n{when}\n'
        '[[fields]]\nname = "ok"\ntype = "yesno"\nprompt.ar = "؟"\n'
    )
    form = parse_form(base.format(when='handoff_when = { field = "ok", equals = "yes" }'), "t")
    assert form.hands_over({"ok": {"value": "yes"}})
    assert not form.hands_over({"ok": {"value": "no"}})
    with pytest.raises(FormError, match="handoff_when"):
        parse_form(base.format(when='handoff_when = { field = "nope", equals = "yes" }'), "t")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:pw@h/d", "mysql:// is not a database Tawasul works with"),
        ("postgres+asyncpg://u:pw@h/d", "write postgresql+asyncpg://u:***@h/d"),
        ("postgresql://u:pw@h/d", "write postgresql+asyncpg://u:***@h/d"),
        ("sqlite:///x.db", "write sqlite+aiosqlite:///x.db"),
        ("garbage", "not a database URL: write sqlite+aiosqlite:///"),
    ],
)
def test_a_database_url_tawasul_cannot_use_says_what_to_write(url: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TAWASUL_DATABASE_URL": url})
    assert said in str(info.value) and "pw" not in str(info.value)


def test_a_database_that_cannot_be_opened_is_named_without_its_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = cli_env(
        tmp_path, TAWASUL_DATABASE_URL=f"postgresql+asyncpg://tawasul:s3cret@127.0.0.1:{port}/t"
    )
    for command in (["db", "upgrade"], ["config", "check"]):
        result = run_cli(tmp_path, *command, env=env, check=False)
        said = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in said and "s3cret" not in said
        assert f"cannot open the database postgresql+asyncpg://tawasul:***@127.0.0.1:{port}/t" in (
            result.stderr
        )
        assert "Check that PostgreSQL is running" in result.stderr


def test_a_database_host_that_never_answers_is_given_up_after_the_connect_timeout(
    tmp_path: Path,
) -> None:
    """A host that takes the connection and says nothing (packets dropped past a firewall):
    commands and the server say so after ``database.connect_timeout_seconds``, not after
    the driver's own minute."""
    assert load_config(None, {}).database.connect_timeout_seconds == 10
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nothing ever answers
        port = silent.getsockname()[1]
        env = cli_env(
            tmp_path,
            TAWASUL_DATABASE_URL=f"postgresql+asyncpg://tawasul:s3cret@127.0.0.1:{port}/t",
            TAWASUL_DATABASE_CONNECT_TIMEOUT_SECONDS="1",
        )
        for command in (["config", "check"], ["serve", "--port", str(free_port())]):
            started = monotonic()
            result = run_cli(tmp_path, *command, env=env, check=False)
            took = monotonic() - started
            assert result.returncode == 1 and "Traceback" not in result.stderr, command
            assert f"no answer from 127.0.0.1:{port} in time" in result.stderr, result.stderr
            assert "s3cret" not in result.stdout + result.stderr
            assert took < 30, (command, took)  # the command's own start, and one second


def test_a_sqlite_folder_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(DatabaseFolderMissing, match="does not exist"):
        Database(f"sqlite+aiosqlite:///{tmp_path / 'typo' / 't.db'}")
    assert not (tmp_path / "typo").exists()


def test_a_command_refuses_a_missing_database_without_creating_one(tmp_path: Path) -> None:
    for command in (["staff", "list"], ["outbox", "failed"]):
        result = run_cli(tmp_path, *command, check=False)
        assert result.returncode == 1 and "no database at" in result.stderr
        assert "tawasul db upgrade" in result.stderr and not (tmp_path / "tawasul.db").exists()


def test_a_channel_that_cannot_start_is_named_by_config_check_and_serve(tmp_path: Path) -> None:
    from bot.channels import config_problems

    config = load_config(None, {"TAWASUL_EMAIL_IMAP_HOST": "mail.example.org"})
    assert [p.split(":")[0] for p in config_problems(config)] == ["email.address"]
    env = cli_env(tmp_path, TAWASUL_EMAIL_IMAP_HOST="127.0.0.1")
    checked = run_cli(tmp_path, "config", "check", env=env, check=False)
    assert checked.returncode == 1 and "email.address" in checked.stderr
    served = run_cli(tmp_path, "serve", "--port", str(free_port()), env=env, check=False)
    assert served.returncode == 1 and "Traceback" not in served.stderr
    assert served.stderr.startswith("Error: email.address: the bot's email address is needed")


VENDOR_LIBRARIES = ("telegram", "twilio", "aioimaplib", "bs4")

SERVER_MODULES = """
import json, sys, tempfile
from pathlib import Path
from bot.app import create_app
from bot.service import Service
from tests.conftest import make_config
sections = json.loads(sys.argv[1])
create_app(Service(make_config(Path(tempfile.mkdtemp()), **sections)))
print(json.dumps(sorted(m for m in {libraries} if m in sys.modules)))
"""


@pytest.mark.parametrize(
    ("sections", "loaded"),
    [
        ({}, []),
        ({"telegram": {"token": "123:ABC"}}, ["telegram"]),
        (
            {"twilio": {"account_sid": "AC1", "auth_token": "t", "whatsapp_from": "+15550001"}},
            ["twilio"],
        ),
    ],
)
def test_a_server_loads_the_libraries_of_the_channels_it_uses_only(
    sections: dict[str, object], loaded: list[str]
) -> None:
    """Each channel's vendor library (and its memory) comes with its section switched on."""
    import json
    import subprocess
    import sys

    script = SERVER_MODULES.format(libraries=VENDOR_LIBRARIES)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(sections)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert json.loads(done.stdout.splitlines()[-1]) == loaded


def test_a_broken_form_stops_a_start_with_the_file_and_the_reason(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "broken.toml").write_text("[form]\nid = 'broken'\n")
    env = cli_env(tmp_path, TAWASUL_KNOWLEDGE_FORMS_DIR=str(forms))
    run_cli(tmp_path, "db", "upgrade", env=env)
    result = run_cli(tmp_path, "chat", input="hello\n", env=env, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Error: knowledge.forms_dir: " in result.stderr and "broken.toml" in result.stderr


def test_config_warnings_name_settings_that_leave_a_channel_dead(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "TAWASUL_TELEGRAM_TOKEN": "1:x",
            "TAWASUL_TELEGRAM_MODE": "webhook",
            "TAWASUL_TWILIO_ACCOUNT_SID": "AC1",
            "TAWASUL_TWILIO_AUTH_TOKEN": "t",
            "TAWASUL_TWILIO_SMS_FROM": "+966500000000",
            "TAWASUL_EMAIL_IMAP_HOST": "mail.example.org",
            "TAWASUL_EMAIL_ADDRESS": "care@example.org",
            "TAWASUL_KNOWLEDGE_FORMS_DIR": str(tmp_path / "no-such-folder"),
        },
    )
    named = [warning.split(":")[0] for warning in config_warnings(config)]
    assert named == [
        "telegram.webhook_secret",
        "twilio.public_base_url",
        "email.password",
        "knowledge.forms_dir",
    ]
    assert config_warnings(Config()) == []


def test_a_misspelt_environment_variable_is_named_with_the_closest_setting() -> None:
    assert unknown_variables(
        {"TAWASUL_SERVER_PORTT": "1", "TAWASUL_CONFIG": "x", "TAWASUL_SERVER_PORT": "1"}
    ) == ["TAWASUL_SERVER_PORTT: no such setting, ignored (did you mean TAWASUL_SERVER_PORT?)"]


def test_a_wrong_value_from_the_environment_is_labelled_with_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {"TAWASUL_LOGGING_LEVEL": "DEBUG", "TAWASUL_HOURS_WORKDAYS": "funday"})
    lines = str(info.value).splitlines()
    assert f"{path}: server.port: " in lines[0]
    assert any(line.startswith("TAWASUL_LOGGING_LEVEL: logging.level: ") for line in lines)
    assert any(line.startswith("TAWASUL_HOURS_WORKDAYS: hours.workdays: ") for line in lines)
