"""Inventory-analytics endpoint stand-in (the dashboard backend).

``GET /api/dashboard/inventory-analytics?client_id=client-007&platform=shopify|amazon|all
&force_refresh=true`` with ``Authorization: Bearer <INVENTORY_TOKEN>``. The backend knows clients
``client-001`` .. ``client-999`` (any credential status: it is the caller's job not to refresh
disconnected ones); SKU counts are deterministic per client × platform, ``all`` = shopify + amazon.
Without ``force_refresh=true`` an answer younger than 10 minutes is served from the backend's cache
(``cached: true``).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from include.sandbox.constants import INVENTORY_TOKEN, PLATFORMS
from include.sandbox.data import client_number, rng_for, sku_count
from include.sandbox.http import Request, Response

CACHE_SECONDS = 600


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class InventoryService:
    def __init__(self, sandbox) -> None:
        self.sb = sandbox
        self._cache: dict[tuple[str, str], tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._cache.clear()

    def handle(self, req: Request) -> Response:
        if req.method != "GET":
            return Response(405, {"success": False, "error": "Method not allowed"})
        auth = req.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != INVENTORY_TOKEN:
            return Response(
                401,
                {"success": False, "error": "Unauthorized: invalid or missing service token"},
                headers=[("WWW-Authenticate", 'Bearer realm="inventory"')],
            )
        faults = self.sb.faults_snapshot()
        self.sb.sleep_latency("inventory", faults)
        cid = req.query.get("client_id", "").strip()
        platform = req.query.get("platform", "all").strip().lower()
        if not cid:
            return Response(400, {"success": False, "error": "client_id is required"})
        if platform not in PLATFORMS:
            return Response(
                400,
                {
                    "success": False,
                    "error": f"Invalid platform {platform!r}; expected one of shopify, amazon, all",
                },
            )
        if client_number(cid) is None:
            return Response(404, {"success": False, "error": f"Client not found: {cid}"})
        fail = (faults.get("inventory_fail_clients") or {}).get(cid)
        if fail:
            return Response(
                int(fail),
                {"success": False, "error": f"Upstream {platform} API error for {cid}"},
            )
        if self.sb.roll("inventory", float(faults.get("inventory_error_rate") or 0)):
            return Response(
                502, {"success": False, "error": "Bad gateway: platform API did not answer"}
            )
        force = req.query.get("force_refresh", "").lower() in ("1", "true", "yes")
        key = (cid, platform)
        with self._lock:
            hit = self._cache.get(key)
        if hit and not force and time.time() - hit[0] < CACHE_SECONDS:
            return Response(200, {**hit[1], "cached": True})
        body = self.build(cid, platform)
        with self._lock:
            self._cache[key] = (time.time(), body)
        return Response(200, body)

    def build(self, cid: str, platform: str) -> dict:
        seed = self.sb.seed
        platforms = ["shopify", "amazon"] if platform == "all" else [platform]
        count = sku_count(cid, platform, seed)
        rng = rng_for(seed, "inventory", cid, platform)
        units = sum(rng.randrange(0, 400) for _ in range(min(count, 50))) * max(count, 1) // 50
        sales = round(count * rng.uniform(120, 900), 2)
        skus = []
        for i in range(min(count, 5)):
            plat = platforms[i % len(platforms)]
            skus.append(
                {
                    "sku": f"{cid.upper()}-{plat[:3].upper()}-{i + 1:04d}",
                    "platform": plat,
                    "title": f"Item {i + 1}",
                    "units_on_hand": rng.randrange(0, 500),
                    "units_sold_30d": rng.randrange(0, 300),
                }
            )
        return {
            "success": True,
            "client_id": cid,
            "platform": platform,
            "platforms": platforms,
            "sku_count": count,
            "kpis": {
                "total_sales": sales,
                "inventory_units": units,
                "turnover_rate": round(rng.uniform(0.5, 8.0), 2),
            },
            "skus": skus,
            "cached": False,
            "refreshed_at": _now_iso(),
        }
