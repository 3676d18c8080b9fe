"""Typed application keys: everything the app holds, in one place."""

from __future__ import annotations

from aiohttp import web

from core.settings import Settings
from web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
