"""Issue 12: the README pointed at `../shared/DESIGN.md`, which a clone does not have. Every
relative link and path it names must exist in the repository, and the Deploy section must give
the exact URLs for the YClients developer cabinet."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_nothing_outside_the_repository_is_referenced() -> None:
    assert "../" not in README and "shared/" not in README
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith(("http://", "https://")):
            continue
        assert (ROOT / target).exists(), target


def test_deploy_names_the_urls_for_the_cabinet_and_how_to_check() -> None:
    deploy = README.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "`PUBLIC_BASE_URL/auth/yclients/redirect`",
        "`PUBLIC_BASE_URL/webhook/yclients`",
        "«передавать данные пользователя»",
        "`YCLIENTS_APP_ID`",
        "`YCLIENTS_PARTNER_TOKEN`",
        "salonbot company add --yclients-id ID --user-token T",
        "@BotFather",
        "TELEGRAM_WEBHOOK_SECRET",
        "reverse_proxy 127.0.0.1:8080",
        "salonbot check",
    ):
        assert needed in deploy, needed
