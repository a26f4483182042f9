"""The state graph's account side: accounts files, account state in the store, the API."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tactful.accounts import read_accounts
from tactful.api.app import create_app
from tactful.cli import app as cli_app
from tactful.policy import PolicyEngine, load_policy
from tactful.runtime.engine import Engine
from tactful.state.customer import AccountContext
from tactful.state.store import SQLiteStore
from tactful.state.store.sqlite import MIGRATIONS

NOW = datetime(2026, 10, 21, 12, 0, tzinfo=UTC)


def ev(n: int, customer: str, minutes: float, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"e{n}",
        "customer_id": customer,
        "account_id": "acme",
        "timestamp": (NOW - timedelta(minutes=minutes)).isoformat(),
    }
    return base | fields


@pytest.fixture
def engine(store: SQLiteStore) -> Engine:
    return Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)


ANGRY = "This is the third time it failed. Still not working, I am furious!"


def two_struggling_customers(engine: Engine) -> None:
    results = engine.ingest(
        [
            ev(1, "ann", 60, type="identify", traits={"tier": "enterprise", "owner": "@dana"}),
            ev(2, "ann", 50, type="message", text=ANGRY),
            ev(3, "bob", 40, type="message", text=ANGRY),
            ev(4, "bob", 30, type="api_error", endpoint="/v1/sync", status=500),
            ev(5, "bob", 29, type="api_error", endpoint="/v1/sync", status=500),
            ev(6, "bob", 28, type="api_error", endpoint="/v1/sync", status=500),
            ev(7, "bob", 27, type="command_run", command="sync", ok=True),
            ev(8, "cat", 20, type="page_view", path="/home"),
        ]
    )
    assert [r.status for r in results] == ["accepted"] * 8


def test_the_account_aggregates_its_customers(engine: Engine, store: SQLiteStore) -> None:
    two_struggling_customers(engine)
    account = store.get_account("acme")
    assert account is not None
    assert account.members == 3
    assert account.context.tier == "enterprise" and account.context.owner == "@dana"
    ann, bob = store.get_state("ann"), store.get_state("bob")
    assert ann is not None and bob is not None
    # the sum of both customers' evidence reads higher than either alone
    frustration = account.level("frustration", NOW)
    assert frustration > max(ann.level("frustration", NOW), bob.level("frustration", NOW))
    assert [m.customer_id for m in account.at_risk][:2] == ["bob", "ann"]
    assert account.error_rate(NOW) == pytest.approx(0.75, abs=0.01)
    # customers joined later see the account's context (tier set by ann's identify)
    assert bob.account.tier == "enterprise"
    count, listed = store.list_account_customers("acme", 2)
    assert count == 3
    assert len(listed) == 2 and {c["customer_id"] for c in listed} <= {"ann", "bob", "cat"}


def test_the_account_endpoint_shows_trend_members_and_risk(engine: Engine) -> None:
    two_struggling_customers(engine)
    with TestClient(create_app(engine)) as client:
        body = client.get("/v1/accounts/acme").json()
        assert body["context"]["owner"] == "@dana"
        assert body["customers"]["count"] == 3
        assert {c["customer_id"] for c in body["customers"]["recent"]} == {"ann", "bob", "cat"}
        assert body["trend"]["frustration"] > 0.5
        assert body["trends"]["frustration"]["direction"] == "deteriorating"
        assert body["at_risk"][0]["customer_id"] == "bob"
        assert body["api_error_rate"] == pytest.approx(0.75, abs=0.01)
        assert client.get("/v1/accounts/nope").status_code == 404

        bob = client.get("/v1/customers/bob").json()
        assert bob["account_summary"]["members_seen"] == 3
        assert bob["trends"]["frustration"]["slope"] == "rising"
        names = [s["name"] for s in bob["active_signals"]]
        assert "error_streak" in names
        streak = next(s for s in bob["active_signals"] if s["name"] == "error_streak")
        assert streak["evidence"] == ["e4", "e5", "e6"]
        assert datetime.fromisoformat(streak["at"]) == NOW - timedelta(minutes=28)


def test_a_too_late_event_is_recorded_and_flagged(engine: Engine, store: SQLiteStore) -> None:
    engine.ingest([ev(1, "ann", 10, type="page_view", path="/home")])
    late = engine.ingest([ev(2, "ann", 10 + 61, type="message", text=ANGRY)])
    assert late[0].status == "accepted"
    assert late[0].as_dict()["late"] is True
    assert late[0].processed is not None and late[0].processed.decisions == []
    state = store.get_state("ann")
    assert state is not None
    assert state.late_events == 1 and state.events_seen == 2
    assert state.level("frustration", NOW) == 0.0
    rows = store.list_events("ann")
    assert [r["late"] for r in rows] == [True, False]  # ordered by event time


def test_an_accounts_file_sets_context_all_or_nothing(tmp_path: Path) -> None:
    good = tmp_path / "accounts.csv"
    good.write_text(
        "account_id,name,tier,value,owner,tenure_days,region\n"
        'acme,Acme Inc,enterprise,"120,000",@dana,900,eu\n'
        "globex,,pro,4800,,,\n"
    )
    accounts, errors = read_accounts(good)
    assert errors == []
    assert accounts["acme"] == AccountContext(
        name="Acme Inc",
        tier="enterprise",
        value=120000.0,
        owner="@dana",
        tenure_days=900,
        traits={"region": "eu"},
    )
    assert accounts["globex"].owner is None and accounts["globex"].value == 4800

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"account_id": "a", "value": "lots"}\n'
        "not json\n"
        '{"tier": "pro"}\n'
        '{"account_id": "b", "tenure_days": -3}\n'
        '{"account_id": "c", "tier": "pro"}\n'
    )
    accounts, errors = read_accounts(bad)
    assert [(e.line, e.field) for e in errors] == [
        (1, "value"),
        (2, "row"),
        (3, "account_id"),
        (4, "tenure_days"),
    ]
    assert "must be a number" in errors[0].why

    cli = CliRunner()
    db = tmp_path / "t.db"
    refused = cli.invoke(cli_app, ["accounts", "import", str(bad), "--db", str(db)])
    assert refused.exit_code == 2
    assert "nothing imported: 4 problem(s)" in refused.output
    done = cli.invoke(cli_app, ["accounts", "import", str(good), "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "imported 2 account(s)" in done.output
    store = SQLiteStore(db)
    try:
        acme = store.get_account("acme")
        assert acme is not None and acme.context.owner == "@dana"
    finally:
        store.close()
    shown = cli.invoke(cli_app, ["accounts", "show", "acme", "--db", str(db)])
    assert shown.exit_code == 0 and "Acme Inc" in shown.output


def test_an_imported_account_reaches_its_customers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    try:
        store.save_account_contexts({"acme": AccountContext(tier="vip", owner="@olga")}, NOW)
        engine = Engine(store, PolicyEngine(load_policy()), clock=lambda: NOW)
        engine.ingest([ev(1, "ann", 5, type="page_view", path="/home")])
        ann = store.get_state("ann")
        assert ann is not None and ann.account.tier == "vip" and ann.account.owner == "@olga"
        # importing again keeps the aggregate the account has built
        store.save_account_contexts({"acme": AccountContext(tier="enterprise")}, NOW)
        acme = store.get_account("acme")
        assert acme is not None and acme.members == 1 and acme.context.tier == "enterprise"
    finally:
        store.close()


def test_a_segment_group_name_is_the_company_name(engine: Engine, store: SQLiteStore) -> None:
    group = {
        "type": "group",
        "messageId": "g1",
        "userId": "ann",
        "groupId": "acme",
        "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
        "traits": {"name": "Acme Inc", "tier": "enterprise"},
    }
    assert engine.ingest([group])[0].status == "accepted"
    acme = store.get_account("acme")
    assert acme is not None and acme.context.name == "Acme Inc"
    engine.ingest([ev(2, "ann", 4, type="identify", traits={"name": "Ann Smith"})])
    acme = store.get_account("acme")
    assert acme is not None and acme.context.name == "Acme Inc"  # a person's name stays theirs
    assert "name" not in acme.context.traits
    ann = store.get_state("ann")
    assert ann is not None and ann.account.traits["name"] == "Ann Smith"


def test_a_persons_traits_are_not_shared_with_their_account(
    engine: Engine, store: SQLiteStore
) -> None:
    engine.ingest(
        [
            ev(1, "ann", 10, type="identify", traits={"email": "ann@acme.test", "tier": "pro"}),
            ev(2, "bob", 5, type="message", text="hello"),
        ]
    )
    acme, bob = store.get_account("acme"), store.get_state("bob")
    assert acme is not None and bob is not None
    assert acme.context.tier == "pro" and bob.account.tier == "pro"  # the account's field
    assert "email" not in acme.context.traits and "email" not in bob.account.traits


def test_schema_1_accounts_are_read_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version=1")
        db.execute(
            "INSERT INTO accounts VALUES (?,?,?)",
            ("acme", json.dumps({"tier": "enterprise", "owner": "@dana"}), NOW.isoformat()),
        )
    store = SQLiteStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        acme = store.get_account("acme")
        assert acme is not None and acme.context.tier == "enterprise"
    finally:
        store.close()


def test_an_accounts_csv_from_excel_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes("account_id,tier\nacme,enterprise\n".encode("utf-8-sig"))
    accounts, errors = read_accounts(path)
    assert errors == [] and accounts["acme"].tier == "enterprise"


def test_an_import_is_not_undone_by_a_running_engine(engine: Engine, store: SQLiteStore) -> None:
    engine.ingest([ev(1, "ann", 30, type="message", text="hello there")])  # caches acme
    store.save_account_contexts({"acme": AccountContext(tier="enterprise", owner="@olga")}, NOW)
    engine.ingest([ev(2, "ann", 20, type="message", text=ANGRY)])  # a stale cached copy
    acme = store.get_account("acme")
    assert acme is not None and acme.context.owner == "@olga"  # the import stands
    assert acme.level("frustration", NOW) > 0  # and the aggregate moved on
    # an identify that changes the context is written
    engine.ingest([ev(3, "ann", 10, type="identify", traits={"tier": "vip"})])
    acme = store.get_account("acme")
    assert acme is not None and acme.context.tier == "vip"
