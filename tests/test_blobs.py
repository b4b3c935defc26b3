"""Blob store and document upload: stored once, checked by content, refused clearly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from activities.blobs import BlobStore, UploadRefused, sniff_content_type, upload
from activities.store import Store
from activities.tables import DocumentRecord
from models.common import MAX_DOCUMENT_BYTES, DocumentRef
from tests.pdf_fixture import make_jpeg, make_pdf, make_png
from tests.store_fixtures import (  # noqa: F401
    blobs,
    count_files,
    database,
    pdf_bytes,
    png_bytes,
    store,
)

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200
NOT_ACCEPTED = "conteúdo não é PDF, PNG, JPEG, DWG ou DXF"


# --- BlobStore ------------------------------------------------------------------------


def test_put_get_and_layout(blobs: BlobStore) -> None:
    data = pdf_bytes(5000)
    digest = blobs.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert blobs.path(digest) == blobs.root / digest[:2] / digest[2:]
    assert blobs.get(digest) == data
    assert blobs.exists(digest)
    assert blobs.exists(digest.upper(), size=5000)
    assert not blobs.exists(digest, size=4999)
    assert not blobs.exists("f" * 64)
    assert not blobs.exists("../../etc/passwd")


def test_a_blob_written_twice_is_stored_once(blobs: BlobStore) -> None:
    data = png_bytes("twice")
    first = blobs.put(data)
    second = blobs.put(data)
    assert first == second
    assert count_files(blobs.root) == 1  # no temp file left behind either
    assert sorted(p.name for p in blobs.root.rglob("*") if p.is_file()) == [first[2:]]


def test_a_truncated_blob_is_rewritten(blobs: BlobStore) -> None:
    data = pdf_bytes(3000)
    digest = blobs.put(data)
    blobs.path(digest).write_bytes(data[:10])  # e.g. a crash before atomic writes existed
    assert not blobs.exists(digest, size=len(data))
    assert blobs.put(data) == digest
    assert blobs.get(digest) == data


def test_path_refuses_anything_but_a_sha256(blobs: BlobStore) -> None:
    with pytest.raises(ValueError):
        blobs.path("../secret")
    with pytest.raises(FileNotFoundError):
        blobs.get("0" * 64)


# --- sniffing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_pdf("projeto"), "application/pdf"),
        (make_png("planta"), "image/png"),
        (make_jpeg("foto"), "image/jpeg"),
        # Only the first bytes of a type: not a file of that type (pypdf, Pillow).
        (b"%PDF-1.4\n...", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        # A PDF header hiding a ZIP or an HTML page, or a real PDF with a ZIP appended.
        (b"%PDF-1.4\nPK\x03\x04\x14\x00\x00\x00" + b"\x00" * 64, None),
        (b"%PDF-1.7\n<!DOCTYPE html><html><script>alert(1)</script></html>", None),
        (make_pdf("projeto") + b"PK\x05\x06" + b"\x00" * 18, None),
        (b"AC1032\x00\x00\x00", "image/vnd.dwg"),
        (b"AC1015\x00\x00\x00", "image/vnd.dwg"),
        (b"  0\nSECTION\n  2\nHEADER\n", "image/vnd.dxf"),
        (b"0\r\nSECTION\r\n2\r\nENTITIES\r\n", "image/vnd.dxf"),
        (b"999\nmade by cad\n  0\nSECTION\n", "image/vnd.dxf"),
        (b"AutoCAD Binary DXF\r\n\x1a\x00...", "image/vnd.dxf"),
        (b"hello world", None),
        (b"GIF89a....", None),
        (b"", None),
    ],
)
def test_sniff_by_content(data: bytes, expected: str | None) -> None:
    assert sniff_content_type(data, "file.bin.pdf") == expected


@pytest.mark.parametrize(
    "data",
    [
        ELF,
        b"MZ\x90\x00\x03\x00\x00\x00",
        b"\xcf\xfa\xed\xfe\x07\x00\x00\x01",
        b"\xca\xfe\xba\xbe\x00\x00\x00\x02",
        b"#!/bin/sh\nrm -rf /\n",
        b"PK\x03\x04\x14\x00\x00\x00",
    ],
)
def test_sniff_refuses_executables_whatever_their_name(data: bytes) -> None:
    assert sniff_content_type(data, "projeto.pdf") is None


def test_sniff_refuses_executable_names() -> None:
    assert sniff_content_type(make_pdf("x"), "projeto.pdf") == "application/pdf"
    assert sniff_content_type(make_pdf("x"), "projeto.exe") is None


# --- upload -------------------------------------------------------------------------


def _assert_nothing_stored(store: Store, blobs: BlobStore) -> None:
    assert count_files(blobs.root) == 0
    with store.session(write=False) as s:
        assert s.exec(sa.select(sa.func.count()).select_from(DocumentRecord)).one()[0] == 0


@pytest.mark.parametrize(
    ("content", "kind", "filename", "message"),
    [
        (pdf_bytes(4 * 1024 * 1024), "electrical_project", "projeto.pdf",
         "arquivo de 4,0 MB excede o limite de 3 MB"),
        (pdf_bytes(MAX_DOCUMENT_BYTES + 1), "electrical_project", "projeto.pdf",
         "arquivo de 3.145.729 bytes excede o limite de 3 MB"),
        (ELF, "electrical_project", "projeto.pdf",
         NOT_ACCEPTED + " (arquivo executável renomeado?)"),
        (b"just some text, not a drawing", "other", "notes.pdf", NOT_ACCEPTED),
        (b"", "commercial_id", "rg.pdf", "arquivo vazio"),
        (pdf_bytes(), "selfie", "me.pdf", "tipo de documento 'selfie' desconhecido"),
        (b"%PDF-1.4\nPK\x03\x04" + b"\x00" * 64, "electrical_project", "projeto.pdf", NOT_ACCEPTED),
        (pdf_bytes(), "electrical_project", "projeto.html",
         "extensão do nome de arquivo .html não aceita; aceitas: .pdf, .png, .jpg, .jpeg, .dwg ou .dxf"),
        (pdf_bytes(), "electrical_project", "projeto.png",
         "extensão .png não corresponde ao conteúdo do arquivo (application/pdf; use .pdf)"),
    ],
    ids=["4MB", "3MB+1", "elf-renamed", "text", "empty", "unknown-kind", "pdf-zip",
         "html-name", "png-name-pdf-content"],
)
def test_upload_refusals_store_nothing(
    store: Store, blobs: BlobStore, tmp_path: Path,
    content: bytes, kind: str, filename: str, message: str,
) -> None:
    for source in (content, _write(tmp_path / filename, content)):
        with pytest.raises(UploadRefused) as refused:
            upload(store, blobs, source, kind=kind, filename=filename)
        if kind == "selfie":  # the message goes on with the accepted kinds
            assert str(refused.value).startswith(message + "; aceitos: commercial_id, ")
        else:
            assert str(refused.value) == message
        assert isinstance(refused.value, ValueError)
    _assert_nothing_stored(store, blobs)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_upload_records_once_and_returns_a_ref(store: Store, blobs: BlobStore, tmp_path: Path) -> None:
    data = pdf_bytes(MAX_DOCUMENT_BYTES)  # exactly 3 MB is accepted
    source = _write(tmp_path / "Projeto Elétrico.pdf", data)
    ref = upload(store, blobs, source, kind="electrical_project")
    assert isinstance(ref, DocumentRef)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (ref.kind, ref.filename, ref.size, ref.content_type) == (
        "electrical_project", "Projeto Elétrico.pdf", MAX_DOCUMENT_BYTES, "application/pdf"
    )
    again = upload(store, blobs, data, kind="correction", filename="dir/../v2.pdf")
    assert again.sha256 == ref.sha256 and again.kind == "correction" and again.filename == "v2.pdf"
    assert count_files(blobs.root) == 1
    record = store.document(ref.sha256)
    assert record is not None
    assert (record.kind, record.size, record.content_type) == (
        "electrical_project", MAX_DOCUMENT_BYTES, "application/pdf"
    )
    with store.session(write=False) as s:
        assert s.exec(sa.select(sa.func.count()).select_from(DocumentRecord)).one()[0] == 1


def test_upload_bytes_without_a_name(store: Store, blobs: BlobStore) -> None:
    ref = upload(store, blobs, png_bytes("photo"), kind="other")
    assert ref.content_type == "image/png"
    assert ref.filename == f"other-{ref.sha256[:12]}.png"
    assert blobs.get(ref.sha256) == png_bytes("photo")
