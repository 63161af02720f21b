"""The Python client's blocking half is generated from its asyncio half (unasync), never edited by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sync_client_is_what_unasync_generates_from_the_aio_one() -> None:
    """scripts/gen_sync_client.py --check passes: _sync.py is exactly the generated text (a hand edit fails it)."""
    spec = importlib.util.spec_from_file_location("gen_sync_client", ROOT / "scripts" / "gen_sync_client.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate()
    committed = (ROOT / "clients/python/src/segment_sidecar_client/_sync.py").read_text(encoding="utf-8")
    assert committed == generated, "run scripts/gen_sync_client.py after editing _aio.py"
    assert "async " not in generated and "await " not in generated and "grpc.aio" not in generated
    assert "class Client:" in generated
