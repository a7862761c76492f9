"""The referral directory over HTTP: coordinators keep it, counsellors search it; CSV in and
out, with broken rows reported row by row and nothing half-imported."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from app.models.enums import StaffRole
from tests.support.roster import http_as
from tests.support.seed import add_counsellor, add_line, add_staff
from tests.support.server import RunningServer


def service(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Boendestöd Malmö",
        "description": {"sv": "Hjälp att hitta boende", "en": "Help finding housing"},
        "needs": ["housing"],
        "languages": ["sv", "en"],
        "phone": "040-12 34 56",
        "email": "",
        "web": "",
        "opening_hours": {"sv": "Vardagar 9–16"},
        "city": "Malmö",
        "notes": {},
    }
    values.update(overrides)
    return values


async def seeded(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_staff(rt, "ella", StaffRole.coordinator)
    await add_counsellor(rt, "anna")


async def test_coordinators_keep_the_directory_and_counsellors_search_it(
    server: RunningServer,
) -> None:
    await seeded(server)
    async with http_as(server, "ella") as ella, http_as(server, "anna") as anna:
        housing = await ella.post("/api/directory", json=service())
        assert housing.status_code == 201, housing.text
        shelter = await ella.post(
            "/api/directory",
            json=service(
                name="Kvinnojouren",
                description={"sv": "Skyddat boende och stöd vid våld"},
                needs=["shelter", "violence"],
                languages=["sv", "ar", "ti"],
                phone="+46 20 50 50 50",
                city="",
            ),
        )
        legal = await ella.post(
            "/api/directory",
            json=service(
                name="Juristjouren",
                description={"en": "Residence permits and asylum"},
                needs=["legal_migration"],
                languages=["en", "fa"],
                phone="",
                email="jour@example.org",
                web="https://example.org/jour?x=1",
                city="Göteborg",
            ),
        )
        assert shelter.status_code == legal.status_code == 201

        async def names(**params: str) -> list[str]:
            response = await anna.get("/api/directory", params=params)
            assert response.status_code == 200, response.text
            return [s["name"] for s in response.json()["services"]]

        assert await names() == ["Boendestöd Malmö", "Juristjouren", "Kvinnojouren"]
        assert await names(need="violence") == ["Kvinnojouren"]
        assert await names(language="fa") == ["Juristjouren"]
        # A city: that city's services first, then the national ones (no city).
        assert await names(city="malmo") == ["Boendestöd Malmö", "Kvinnojouren"]
        assert await names(q="VÅLD stöd") == ["Kvinnojouren"]
        assert await names(q="asylum", city="Göteborg") == ["Juristjouren"]
        assert await names(need="addiction") == []
        bad = await anna.get("/api/directory", params={"need": "pizza"})
        assert bad.status_code == 422 and bad.json()["code"] == "unknown_need"

        entry = housing.json()
        one = await anna.get(f"/api/directory/{entry['id']}")
        assert one.status_code == 200 and one.json()["phone"] == "040-12 34 56"
        changed = await ella.put(
            f"/api/directory/{entry['id']}", json=service(needs=["housing", "work_education"])
        )
        assert changed.status_code == 200 and changed.json()["needs"] == [
            "housing",
            "work_education",
        ]
        # Counsellors read; they do not write.
        refused = await anna.post("/api/directory", json=service(name="Mine"))
        assert refused.status_code == 403
        removed = await ella.delete(f"/api/directory/{entry['id']}")
        assert removed.status_code == 204
        assert (await anna.get(f"/api/directory/{entry['id']}")).status_code == 404
        assert (await ella.delete(f"/api/directory/{entry['id']}")).status_code == 404


async def test_contact_details_in_odd_formats_are_refused_with_the_field_named(
    server: RunningServer,
) -> None:
    await seeded(server)
    async with http_as(server, "ella") as ella:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"phone": "call me maybe"}, "phone"),
            ({"phone": "12"}, "phone"),
            ({"phone": "+46 (0)8-123 45 67 89 12 34 56 78 99"}, "phone"),
            ({"email": "not-an-address"}, "email"),
            ({"email": "a@b.c<script>"}, "email"),
            ({"web": "javascript:alert(1)"}, "web"),
            ({"web": "https://exa mple.org"}, "web"),
            ({"web": "ftp://example.org"}, "web"),
            ({"web": "https://user:pw@example.org"}, "web"),
            ({"web": "https://localhost"}, "web"),
            ({"needs": []}, "needs"),
            ({"needs": ["pizza"]}, "needs"),
            ({"name": ""}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"languages": ["not a language"]}, "languages"),
            ({"description": {"sv": "x" * 2001}}, "description"),
            ({"phone": "", "email": "", "web": ""}, "reach"),
            ({"name": "Bell\x07"}, "control"),
            ({"owner": "me"}, "owner"),
        ]
        for change, where in cases:
            response = await ella.post("/api/directory", json=service(**change))
            assert response.status_code == 422, (change, response.text)
            assert where in response.text or where in ("reach", "control"), response.text
        ok = await ella.post(
            "/api/directory",
            json=service(phone="+46 (0)8-123 45 67", web="https://example.org/a?b=c#d"),
        )
        assert ok.status_code == 201, ok.text
        # Script is stored and returned as the text it is (the UIs show it as text).
        script = await ella.post("/api/directory", json=service(name="<img src=x onerror=1>"))
        assert script.status_code == 201 and script.json()["name"] == "<img src=x onerror=1>"
        assert (await ella.get("/api/directory/not-an-id")).status_code == 422


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


HEADER = ["name", "needs", "languages", "phone", "email", "web", "city", "description_sv"]


async def test_csv_export_and_all_or_nothing_import(server: RunningServer) -> None:
    await seeded(server)
    async with http_as(server, "ella") as ella, http_as(server, "anna") as anna:
        await ella.post("/api/directory", json=service(phone="+46 40 12 34 56"))
        exported = await ella.get("/api/directory/export.csv")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        text = exported.content.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:8] == ["id", "name", "needs", "languages", "phone", "email", "web", "city"]
        assert "description_en" in rows[0] and "opening_hours_sv" in rows[0]
        # A phone number starting with + is written so spreadsheets do not run it.
        assert rows[1][4] == "'+46 40 12 34 56"
        assert (await anna.get("/api/directory/export.csv")).status_code == 403

        # Broken rows: every problem is reported by row and field; nothing is stored.
        broken = csv_text(
            [
                HEADER,
                ["Good one", "housing", "sv", "08-123 456", "", "", "", "Bra"],
                ["", "housing", "sv", "08-123 456", "", "", "", ""],
                ["Bad phone", "health", "sv", "ring oss", "", "", "", ""],
                ["Bad need", "pizza;health", "sv", "", "a@example.org", "", "", ""],
                ["Short row", "health"],
                ["Bad web", "violence", "sv", "", "", "javascript:alert(1)", "", ""],
            ]
        )
        before = (await anna.get("/api/directory")).json()["services"]
        refused = await ella.post(
            "/api/directory/import", content=broken.encode(), headers={"Content-Type": "text/csv"}
        )
        assert refused.status_code == 422, refused.text
        errors = refused.json()["errors"]
        assert {(e["row"], e["field"].split(".")[0]) for e in errors} >= {
            (3, "name"),
            (4, "phone"),
            (5, "needs"),
            (6, "row"),
            (7, "web"),
        }
        assert 2 not in {e["row"] for e in errors}
        assert (await anna.get("/api/directory")).json()["services"] == before

        # A good file: new rows are created, a row with an exported id updates that entry.
        entry_id = rows[1][0]
        good = csv_text(
            [
                ["id", *HEADER, "opening_hours_en"],
                [entry_id, "Renamed", "housing;shelter", "sv;en", "'+46 40 1", "", "", "", "", ""],
                ["", "Exit Sverige", "exit_programmes", "sv", "", "", "https://exit.example.org",
                 "", "Stöd att lämna", "Mon 9-5"],
            ]
        )  # fmt: skip
        imported = await ella.post("/api/directory/import", content=("\ufeff" + good).encode())
        assert imported.status_code == 200, imported.text
        assert imported.json() == {"created": 1, "updated": 1}
        listed = {s["name"]: s for s in (await anna.get("/api/directory")).json()["services"]}
        assert set(listed) == {"Renamed", "Exit Sverige"}
        assert listed["Renamed"]["phone"] == "+46 40 1"
        assert listed["Renamed"]["needs"] == ["housing", "shelter"]
        assert listed["Exit Sverige"]["opening_hours"] == {"en": "Mon 9-5"}

        # Round trip: what was exported imports again unchanged.
        again = await ella.get("/api/directory/export.csv")
        result = await ella.post("/api/directory/import", content=again.content)
        assert result.json() == {"created": 0, "updated": 2}

        for bad_file, field in [
            (b"", "file"),
            (b"name,needs,colour\nA,housing,red\n", "colour"),
            (b"\xff\xfe not utf-8", None),
            (b"name,needs\n" + b"A,housing\n" * 2001, "file"),
            (b'name,needs\n"unterminated,housing\n', None),
            # A NUL, which PostgreSQL cannot store, in a field with no pattern of its own.
            (b"name,needs,email\nA,housing,a\x00b@example.org\n", "email"),
        ]:
            response = await ella.post("/api/directory/import", content=bad_file)
            assert response.status_code == 422, (bad_file[:30], response.text)
            if field is not None:
                assert field in response.text
        assert len((await anna.get("/api/directory")).json()["services"]) == 2


async def test_directory_endpoints_need_a_signed_in_staff_member(server: RunningServer) -> None:
    await seeded(server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/directory")).status_code == 401
        assert (await http.post("/api/directory/import", content=b"name\n")).status_code == 401
