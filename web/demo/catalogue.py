"""The demo salon as YClients would hold it: the salon, its services, its masters, its clients
and a week of records around today, in the shapes of the REST API
(shared/reference/yclients-api.md, the same shapes tests/fakes/yclients.py serves)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

JSONDict = dict[str, Any]

SALON_ID = 770_001
TIMEZONE = "Europe/Moscow"
TITLE = "Салон красоты «Лаванда»"
CHANGE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # `2026-11-20T12:00:00+0300`, as YClients writes it

# The people the visitor plays: a client of the salon and its administrator.
CLIENT_NAME = "Екатерина Смирнова"
CLIENT_PHONE = "+79990000101"
STAFF_NAME = "Ольга Белова"
STAFF_PHONE = "+79990000100"


@dataclass(frozen=True, slots=True)
class Service:
    id: int
    title: str
    price_min: int
    price_max: int
    minutes: int


@dataclass(frozen=True, slots=True)
class Master:
    id: int
    name: str
    specialization: str
    # The services this master does.
    services: tuple[int, ...]


SERVICES = (
    Service(11_001, "Женская стрижка", 2500, 2500, 60),
    Service(11_002, "Мужская стрижка", 1500, 1500, 45),
    Service(11_003, "Окрашивание в один тон", 4500, 7000, 120),
    Service(11_004, "Укладка", 1800, 1800, 45),
    Service(11_005, "Маникюр с покрытием гель-лак", 2200, 2200, 90),
    Service(11_006, "Педикюр", 2800, 2800, 90),
    Service(11_007, "Коррекция и окрашивание бровей", 1200, 1200, 30),
)
MASTERS = (
    Master(21_001, "Анна Соколова", "парикмахер-стилист", (11_001, 11_004)),
    Master(21_002, "Елена Волкова", "колорист", (11_003, 11_001)),
    Master(21_003, "Дмитрий Орлов", "барбер", (11_002,)),
    Master(21_004, "Марина Ковалёва", "мастер маникюра и педикюра", (11_005, 11_006)),
    Master(21_005, "Алина Гусева", "бровист", (11_007,)),
)
# The salon's other clients (name, phone): the week's records are theirs too.
CLIENTS = (
    ("Ирина Петрова", "+79990000111"),
    ("Мария Иванова", "+79990000112"),
    ("Светлана Попова", "+79990000113"),
    ("Алексей Морозов", "+79990000114"),
    ("Наталья Лебедева", "+79990000115"),
    ("Татьяна Новикова", "+79990000116"),
    ("Юлия Фёдорова", "+79990000117"),
    ("Сергей Волков", "+79990000118"),
)


def company() -> JSONDict:
    """`GET /company/{id}?showBookforms=1` of the demo salon (the bookform is set later: it is
    the demo's own stand-in page, whose address depends on the port)."""
    return {
        "id": SALON_ID,
        "title": TITLE,
        "timezone_name": TIMEZONE,
        "timezone": 3,
        "address": "Москва, ул. Покровка, 17",
        "phone": "+7 495 000-00-00",
        "bookforms": [],
    }


def services() -> list[JSONDict]:
    return [
        {
            "id": s.id,
            "title": s.title,
            "category_id": 1,
            "price_min": s.price_min,
            "price_max": s.price_max,
            "active": 1,
            "staff": [{"id": m.id} for m in MASTERS if s.id in m.services],
        }
        for s in SERVICES
    ]


def staff() -> list[JSONDict]:
    return [
        {
            "id": m.id,
            "name": m.name,
            "specialization": m.specialization,
            "position": {"id": 1, "title": "Мастер"},
            "fired": 0,
            "hidden": 0,
        }
        for m in MASTERS
    ]


def service(service_id: int) -> Service:
    return next(s for s in SERVICES if s.id == service_id)


def record(
    record_id: int,
    *,
    when: datetime,
    service_id: int,
    client: tuple[str, str],
    attendance: int,
    changed: datetime,
    client_id: int,
) -> JSONDict:
    """A record as `GET /records` returns it; `when` and `changed` are salon-local and aware."""
    what = service(service_id)
    master = next(m for m in MASTERS if service_id in m.services)
    cost = what.price_min if what.price_max == what.price_min else (what.price_min + 500)
    stamp = changed.strftime(CHANGE_FORMAT)
    return {
        "id": record_id,
        "company_id": SALON_ID,
        "staff_id": master.id,
        "staff": {"id": master.id, "name": master.name},
        "services": [
            {
                "id": what.id,
                "title": what.title,
                "cost": cost,
                "first_cost": cost,
                "discount": 0,
                "amount": 1,
            }
        ],
        "client": {"id": client_id, "name": client[0], "phone": client[1].lstrip("+"), "email": ""},
        "datetime": when.isoformat(),
        "date": when.strftime("%Y-%m-%d %H:%M:%S"),
        "seance_length": what.minutes * 60,
        "length": what.minutes * 60,
        "comment": "",
        "attendance": attendance,
        "visit_attendance": attendance,
        "deleted": False,
        "paid_full": 1 if attendance == 1 else 0,
        "online": True,
        "create_date": stamp,
        "last_change_date": stamp,
        "api_id": "",
    }


# The demo client's own visits: (days from today, hour, service, attendance). One in the past
# (already earned a bonus), the next today, one more later in the week.
_OWN_VISITS: tuple[tuple[int, int | None, int, int], ...] = (
    (-4, 15, 11_003, 1),
    (0, None, 11_001, 2),
    (3, 12, 11_005, 0),
)
_HOURS = (10, 12, 14, 16, 18)


def week(now: datetime) -> list[JSONDict]:
    """The records of the week around `now` (salon-local, aware): the other clients' visits
    from three days back to three days ahead, and the demo client's own."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    created = now - timedelta(days=10)
    records: list[JSONDict] = []
    next_id = 90_000_001
    for day in range(-3, 4):
        for slot, hour in enumerate(_HOURS[: 3 + (day % 2)]):
            n = (day + 3) * 5 + slot
            when = today + timedelta(days=day, hours=hour)
            client = CLIENTS[n % len(CLIENTS)]
            served = SERVICES[n % len(SERVICES)]
            # The past came (one did not); the future waits, some confirmed by the client.
            attendance = (-1 if n % 11 == 4 else 1) if when < now else (2 if n % 3 == 0 else 0)
            records.append(
                record(
                    next_id,
                    when=when,
                    service_id=served.id,
                    client=client,
                    attendance=attendance,
                    changed=min(when, now) if when < now else created,
                    client_id=50_000 + CLIENTS.index(client),
                )
            )
            next_id += 1
    for day, at, service_id, attendance in _OWN_VISITS:
        # Today's visit is in an hour or so, whatever the time the demo starts.
        start = (
            today + timedelta(days=day, hours=at)
            if at is not None
            else (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        )
        records.append(
            record(
                next_id,
                when=start,
                service_id=service_id,
                client=(CLIENT_NAME, CLIENT_PHONE),
                attendance=attendance,
                changed=min(start, now) if start < now else created,
                client_id=50_100,
            )
        )
        next_id += 1
    return records
