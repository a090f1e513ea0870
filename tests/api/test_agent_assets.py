"""/api/agents/{id}/assets and /api/images: size limit, type sniffing, safe names and keys, serving, tenancy."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from api.services.uploads import check_upload, sanitize_filename, sniff
from db.models import AgentAsset
from salesflow.settings import Settings
from tests.harness import RouteRecorder, Tenant

MISSING = "00000000-0000-4000-8000-000000000000"
MAX_BYTES = 64 * 1024


def png(width: int = 1, height: int = 1) -> bytes:
    """A real, minimal RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32 + b"\xff\xd9"


@pytest.fixture
async def storage_dir(tmp_path: Path) -> Path:
    """Where this test's uploads land."""
    return tmp_path / "assets"


@pytest.fixture
async def uploads(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], temporal_client: Client,
    route_recorder: RouteRecorder, storage_dir: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with storage in a temp dir and a 64 KiB upload limit; its routes count for the coverage gate."""
    app = create_app(settings.model_copy(update={"storage_dir": storage_dir, "max_upload_bytes": MAX_BYTES}),
                     sessions=sessions, temporal=temporal_client)
    recorder = RouteRecorder(app)
    recorder.seen = route_recorder.seen
    transport = httpx.ASGITransport(app=recorder)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _agent(client: httpx.AsyncClient, tenant: Tenant) -> str:
    r = await client.post("/api/agents", json={"name": "Shop"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _upload(
    client: httpx.AsyncClient, tenant: Tenant, agent: str, name: str, data: bytes,
    content_type: str = "application/octet-stream", **form: str,
) -> httpx.Response:
    return await client.post(f"/api/agents/{agent}/assets", files={"file": (name, data, content_type)}, data=form,
                             headers=tenant.headers)


def _stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_upload_stores_the_bytes_under_a_generated_key_and_lists_the_asset(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent = await _agent(uploads, tenant)
    image = png(4, 4)
    r = await _upload(uploads, tenant, agent, "logo.png", image, "image/png", title="  Our logo ")
    assert r.status_code == 201, r.text
    asset = r.json()
    assert (asset["filename"], asset["title"], asset["content_type"], asset["kind"]) == (
        "logo.png", "Our logo", "image/png", "image")
    assert asset["size_bytes"] == len(image)
    assert asset["url"] == f"/api/images?id={asset['id']}"
    async with sessions() as session:
        row = await session.scalar(select(AgentAsset).where(AgentAsset.id == uuid.UUID(asset["id"])))
    assert row is not None
    org, agent_part, blob = row.storage_key.split("/")
    assert (org, agent_part) == (str(tenant.org_id), agent)
    assert uuid.UUID(hex=blob)
    assert (storage_dir / row.storage_key).read_bytes() == image
    doc = await _upload(uploads, tenant, agent, "terms.pdf", PDF)
    assert (doc.json()["kind"], doc.json()["content_type"], doc.json()["url"]) == ("document", "application/pdf", None)
    listed = (await uploads.get(f"/api/agents/{agent}/assets", headers=tenant.headers)).json()
    assert [a["id"] for a in listed["items"]] == [doc.json()["id"], asset["id"]]
    images = (await uploads.get(f"/api/agents/{agent}/assets", params={"kind": "image"}, headers=tenant.headers)).json()
    assert [a["id"] for a in images["items"]] == [asset["id"]]


async def test_text_and_csv_uploads_are_accepted(uploads: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(uploads, tenant)
    csv = await _upload(uploads, tenant, agent, "prices.csv", "item,price\nёж,10\n".encode())
    assert csv.status_code == 201, csv.text
    assert csv.json()["content_type"] == "text/csv"
    txt = await _upload(uploads, tenant, agent, "notes", b"plain notes\n", "text/plain")
    assert (txt.json()["content_type"], txt.json()["filename"]) == ("text/plain", "notes")
    jpg = await _upload(uploads, tenant, agent, "photo.JPG", JPEG, "image/jpeg")
    assert jpg.json()["content_type"] == "image/jpeg"


async def test_an_oversized_upload_is_refused_with_413(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path
) -> None:
    agent = await _agent(uploads, tenant)
    r = await _upload(uploads, tenant, agent, "big.png", png() + b"\x00" * MAX_BYTES)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    # Far beyond the limit: refused from Content-Length, before the body is read.
    r = await _upload(uploads, tenant, agent, "huge.png", png() + b"\x00" * (4 * MAX_BYTES))
    assert r.status_code == 413
    # Exactly at the limit is fine.
    ok = await _upload(uploads, tenant, agent, "edge.png", png() + b"\x00" * (MAX_BYTES - len(png())))
    assert ok.status_code == 201, ok.text
    assert len(_stored_files(storage_dir)) == 1


async def test_a_chunked_oversized_upload_is_refused_while_streaming(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path
) -> None:
    agent = await _agent(uploads, tenant)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + png() + b"\x00" * (3 * MAX_BYTES) + \
        f"\r\n--{boundary}--\r\n".encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    r = await uploads.post(f"/api/agents/{agent}/assets", content=chunks(),
                           headers={**tenant.headers, "content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert _stored_files(storage_dir) == []


@pytest.mark.parametrize(
    ("name", "data", "declared"),
    [
        ("photo.png", PDF, "image/png"),  # a PDF wearing a .png name
        ("photo.png", ELF, "image/png"),  # an executable
        ("photo.png", HTML, "image/png"),  # markup that a browser would run
        ("page.html", HTML, "text/html"),
        ("notes.txt", HTML, "text/plain"),  # markup is never "plain text"
        ("image.png", b"just some text", "image/png"),
        ("photo.jpg", png(), "image/jpeg"),  # a real image under another image's name
        ("doc.pdf", png(), "application/pdf"),
        ("picture", PDF, "image/png"),  # no extension, declared type disagrees
        ("tool.exe", ELF, "application/octet-stream"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 40, "application/zip"),
        ("vector.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        ("report.docx", PDF, "application/octet-stream"),  # allowed content, refused extension
        ("empty.png", b"", "image/png"),
    ],
)
async def test_disguised_or_unsupported_files_are_rejected(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path, name: str, data: bytes, declared: str
) -> None:
    agent = await _agent(uploads, tenant)
    r = await _upload(uploads, tenant, agent, name, data, declared)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "body.file"
    assert _stored_files(storage_dir) == []
    assert (await uploads.get(f"/api/agents/{agent}/assets", headers=tenant.headers)).json()["items"] == []


async def test_a_path_traversal_filename_is_sanitised_and_never_used_as_a_path(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent = await _agent(uploads, tenant)
    r = await _upload(uploads, tenant, agent, "../../etc/passwd.png", png(), "image/png")
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "passwd.png"
    async with sessions() as session:
        key = await session.scalar(select(AgentAsset.storage_key).where(AgentAsset.id == uuid.UUID(r.json()["id"])))
    assert key is not None
    assert ".." not in key
    assert "passwd" not in key
    stored = _stored_files(storage_dir)
    assert len(stored) == 1
    assert storage_dir in stored[0].parents
    for raw, expected in [("..\\..\\windows\\win.ini.txt", "win.ini.txt"), ("\x00evil\x1b[31m.png", "evil[31m.png"),
                          ("..", "file.png"), ("   .hidden.png", "hidden.png"), ("a<b>c|d?.png", "a_b_c_d_.png")]:
        assert sanitize_filename(raw, "png") == expected


async def test_bad_multipart_requests_are_rejected(uploads: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(uploads, tenant)
    path = f"/api/agents/{agent}/assets"
    r = await uploads.post(path, json={"file": "aGVsbG8="}, headers=tenant.headers)
    assert r.status_code == 400
    r = await uploads.post(path, data={"title": "no file"}, files={"other": ("a.png", png(), "image/png")},
                           headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "body.file"
    two = [("file", ("a.png", png(), "image/png")), ("file", ("b.png", png(), "image/png"))]
    r = await uploads.post(path, files=two, headers=tenant.headers)
    assert r.status_code == 400
    r = await _upload(uploads, tenant, agent, "a.png", png(), "image/png", title="t" * 201)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "body.title"
    r = await uploads.post(path, content=b"--x\r\ngarbage", headers={**tenant.headers,
                                                                     "content-type": "multipart/form-data"})
    assert r.status_code == 400


async def test_images_are_served_with_their_sniffed_type_and_nosniff(
    uploads: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await _agent(uploads, tenant)
    image = png(2, 3)
    asset = (await _upload(uploads, tenant, agent, "пиксель.png", image, "image/png")).json()
    r = await uploads.get("/api/images", params={"id": asset["id"]}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.content == image
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("inline; filename*=UTF-8''")
    assert "пиксель" not in r.headers["content-disposition"]  # percent-encoded, header-safe
    doc = (await _upload(uploads, tenant, agent, "terms.pdf", PDF)).json()
    assert (await uploads.get("/api/images", params={"id": doc["id"]}, headers=tenant.headers)).status_code == 404
    assert (await uploads.get("/api/images", params={"id": MISSING}, headers=tenant.headers)).status_code == 404
    assert (await uploads.get("/api/images", params={"id": "nope"}, headers=tenant.headers)).status_code == 400


async def test_images_list_the_orgs_images_filtered_by_agent(
    uploads: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    first, second = await _agent(uploads, tenant), await _agent(uploads, tenant)
    a = (await _upload(uploads, tenant, first, "a.png", png(), "image/png")).json()
    b = (await _upload(uploads, tenant, second, "b.gif", b"GIF89a" + b"\x00" * 20, "image/gif")).json()
    await _upload(uploads, tenant, first, "c.pdf", PDF)
    theirs = await _agent(uploads, other_tenant)
    await _upload(uploads, other_tenant, theirs, "x.png", png(), "image/png")
    everything = (await uploads.get("/api/images", headers=tenant.headers)).json()
    assert [i["id"] for i in everything["items"]] == [b["id"], a["id"]]
    only_first = (await uploads.get("/api/images", params={"agent_id": first}, headers=tenant.headers)).json()
    assert [i["id"] for i in only_first["items"]] == [a["id"]]
    page = (await uploads.get("/api/images", params={"limit": 1}, headers=tenant.headers)).json()
    assert page["next_cursor"] is not None
    assert (await uploads.get("/api/images", params={"cursor": "bad!"}, headers=tenant.headers)).status_code == 400
    foreign = (await uploads.get("/api/images", params={"agent_id": theirs}, headers=tenant.headers)).json()
    assert foreign["items"] == []


async def test_another_tenants_image_is_not_found(
    uploads: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _agent(uploads, other_tenant)
    asset = (await _upload(uploads, other_tenant, theirs, "secret.png", png(), "image/png")).json()
    r = await uploads.get("/api/images", params={"id": asset["id"]}, headers=tenant.headers)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    owner = await uploads.get("/api/images", params={"id": asset["id"]}, headers=other_tenant.headers)
    assert owner.status_code == 200
    r = await uploads.delete(f"/api/agents/{theirs}/assets/{asset['id']}", headers=tenant.headers)
    assert r.status_code == 404


async def test_images_of_a_deleted_agent_are_no_longer_served(uploads: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _agent(uploads, tenant)
    asset = (await _upload(uploads, tenant, agent, "a.png", png(), "image/png")).json()
    assert (await uploads.delete(f"/api/agents/{agent}", headers=tenant.headers)).status_code == 204
    assert (await uploads.get("/api/images", params={"id": asset["id"]}, headers=tenant.headers)).status_code == 404
    assert (await uploads.get("/api/images", headers=tenant.headers)).json()["items"] == []


async def test_delete_asset_removes_the_row_and_the_stored_file(
    uploads: httpx.AsyncClient, tenant: Tenant, storage_dir: Path
) -> None:
    agent = await _agent(uploads, tenant)
    keep = (await _upload(uploads, tenant, agent, "keep.png", png(), "image/png")).json()
    drop = (await _upload(uploads, tenant, agent, "drop.png", png(2, 2), "image/png")).json()
    assert len(_stored_files(storage_dir)) == 2
    path = f"/api/agents/{agent}/assets/{drop['id']}"
    assert (await uploads.delete(path, headers=tenant.headers)).status_code == 204
    assert len(_stored_files(storage_dir)) == 1
    assert (await uploads.delete(path, headers=tenant.headers)).status_code == 404
    assert (await uploads.get("/api/images", params={"id": drop["id"]}, headers=tenant.headers)).status_code == 404
    listed = (await uploads.get(f"/api/agents/{agent}/assets", headers=tenant.headers)).json()
    assert [a["id"] for a in listed["items"]] == [keep["id"]]
    assert (await uploads.delete(f"/api/agents/{agent}/assets/{MISSING}", headers=tenant.headers)).status_code == 404


async def test_send_asset_actions_must_reference_an_asset_of_the_same_agent(
    uploads: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent, sibling = await _agent(uploads, tenant), await _agent(uploads, tenant)
    asset = (await _upload(uploads, tenant, agent, "menu.pdf", PDF)).json()
    body: dict[str, Any] = {"type": "send_asset", "parameters": {"asset_id": asset["id"], "caption": "Menu"}}
    r = await uploads.post(f"/api/agents/{agent}/actions", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    assert r.json()["parameters"] == {"asset_id": asset["id"], "caption": "Menu"}
    r = await uploads.post(f"/api/agents/{sibling}/actions", json=body, headers=tenant.headers)
    assert r.status_code == 400


def test_sniffer_reads_magic_bytes_not_names() -> None:
    assert sniff(png()) == "image/png"
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(PDF) == "application/pdf"
    assert sniff(ELF) is None
    assert sniff(HTML) is None
    assert sniff("обычный текст".encode()) == "text/plain"
    assert sniff(b"\xff\xfe\x00broken") is None
    assert check_upload(png(), "x.PNG", "image/png").content_type == "image/png"
    assert check_upload(b"a,b\n1,2\n", "data.txt", "text/csv").content_type == "text/plain"
    assert check_upload(b"a,b\n1,2\n", None, "text/csv").content_type == "text/csv"
