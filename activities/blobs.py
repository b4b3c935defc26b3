"""Content-addressed blob stores and document upload.

Files never travel inside workflow history: they are stored once under their SHA-256 and
processes carry ``DocumentRef`` values. Where the bytes live (``GD_BLOB_URL``,
:func:`open_blobs`):

* ``database`` — the store's ``document_blob`` table (:class:`DatabaseBlobs`), the default
  when the store is PostgreSQL: every worker and API instance reads what any other wrote;
* ``s3://bucket/prefix`` — S3-compatible storage through boto3 (:class:`S3Blobs`; MinIO or
  another endpoint with ``GD_S3_ENDPOINT_URL``; credentials from the standard ``AWS_*``
  variables or the instance's role), objects at ``prefix/ab/cdef…``;
* ``local`` — a directory of this machine (:class:`BlobStore`, ``root/ab/cdef…``), the
  default with SQLite: one machine only, for development.

Every back-end has ``put(data) -> sha256``, ``get(sha256) -> bytes`` (``FileNotFoundError``
when absent), ``exists(sha256, size=None)`` and ``size(sha256)``. A file is accepted only
if it is not empty, is at most 3 MB, and its *content* is PDF, PNG, JPEG, DWG or DXF:
a PDF must parse (pypdf, at least one page) and an image must decode (Pillow); a file
that only starts like one (``%PDF-`` followed by a ZIP or an HTML page) is refused, as
is a renamed executable (ELF, PE, Mach-O, script, zip/jar). A file name, when given,
must end in an extension of the accepted types (an allowlist), matching the content.

Who may cite a document
-----------------------
A hash is visible in every status, so knowing one proves nothing. ``DocumentLink`` rows
say which workflows a document belongs to: ``upload(..., for_workflow=W)`` links it to
``W`` (whoever holds the bytes may use them), and the first workflow to cite a document
nobody holds a link to claims it (``documents.resolve``). A document another workflow holds
may still be cited (a customer's second request reuses its files) but never becomes this
workflow's, so it is never mailed out by it (``activities/mail.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from activities.store import Store
from activities.tables import DocumentRecord, utcnow
from models.common import DOCUMENT_KINDS, MAX_DOCUMENT_BYTES, DocumentRef, valid_workflow_id

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MB = 1024 * 1024
ACCEPTED_TYPES_TEXT = "PDF, PNG, JPEG, DWG ou DXF"

_EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/vnd.dwg": ".dwg",
    "image/vnd.dxf": ".dxf",
}
# Names that would make a desktop run the file, whatever its content.
_EXECUTABLE_SUFFIXES = {
    ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".msi", ".dll", ".sh", ".bash",
    ".ps1", ".vbs", ".vbe", ".js", ".jse", ".wsf", ".hta", ".jar", ".app", ".elf",
    ".run", ".py", ".pl", ".lnk",
}
_EXECUTABLE_MAGIC = (
    b"\x7fELF",  # ELF
    b"MZ",  # DOS/PE
    b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",  # Mach-O (big endian)
    b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",  # Mach-O (little endian)
    b"\xca\xfe\xba\xbe",  # Mach-O universal / Java class
    b"#!",  # shebang script
    b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08",  # zip, jar, apk
    b"\x00asm",  # WebAssembly
)
# The names a file may have, by the type its content was sniffed as.
_ALLOWED_SUFFIXES = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe"),
    "image/vnd.dwg": (".dwg",),
    "image/vnd.dxf": (".dxf",),
}
ALLOWED_SUFFIXES_TEXT = ".pdf, .png, .jpg, .jpeg, .dwg ou .dxf"
# What must never follow a ``%PDF-`` header: another format hiding behind it.
_SMUGGLED = re.compile(rb"PK\x03\x04|<!doctype\s+html|<html|<script|<body|<iframe", re.I)
_DWG = re.compile(rb"AC10\d\d")
_DXF_TEXT = re.compile(rb"\A\s*(?:999\r?\n[^\r\n]*\r?\n\s*)*0\r?\n\s*SECTION\s*\r?\n")
_DXF_BINARY = b"AutoCAD Binary DXF\r\n\x1a\x00"


class UploadRefused(ValueError):
    """A file that cannot be attached; the message (pt-BR) names the rule it broke."""


def _check_sha(sha256: str) -> str:
    value = sha256.lower()
    if not _SHA256.fullmatch(value):
        raise ValueError("sha256 deve ter 64 caracteres hexadecimais")
    return value


class BlobStore:
    """Files by SHA-256 under ``root``; each written atomically and only once."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, sha256: str) -> Path:
        value = _check_sha(sha256)
        return self.root / value[:2] / value[2:]

    def exists(self, sha256: str, size: int | None = None) -> bool:
        try:
            target = self.path(sha256)
        except ValueError:
            return False
        try:
            stat = target.stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if self.exists(digest, len(data)):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(target.parent)
        return digest

    def get(self, sha256: str) -> bytes:
        """The bytes of a blob; ``FileNotFoundError`` if it is not stored."""
        return self.path(sha256).read_bytes()

    def size(self, sha256: str) -> int | None:
        """The stored size in bytes, or None when the blob is not stored."""
        try:
            return self.path(sha256).stat().st_size
        except (FileNotFoundError, ValueError):
            return None


class _RemoteBlob:
    """What ``path()`` gives for a blob that is not a local file: only its ``stat()``
    (``st_size``), for callers written against :class:`BlobStore`; prefer ``size()``."""

    def __init__(self, blobs: "DatabaseBlobs | S3Blobs", sha256: str):
        self._blobs, self.sha256 = blobs, sha256

    def stat(self) -> os.stat_result:
        size = self._blobs.size(self.sha256)
        if size is None:
            raise FileNotFoundError(self.sha256)
        return os.stat_result((0o100444, 0, 0, 1, 0, 0, size, 0, 0, 0))

    def read_bytes(self) -> bytes:
        return self._blobs.get(self.sha256)


class DatabaseBlobs:
    """Blobs as rows of ``document_blob`` in the store (one per SHA-256, never rewritten)."""

    def __init__(self, store: Store):
        self.store = store

    def __repr__(self) -> str:
        return f"DatabaseBlobs({self.store!r})"

    def path(self, sha256: str) -> _RemoteBlob:
        return _RemoteBlob(self, _check_sha(sha256))

    def size(self, sha256: str) -> int | None:
        from activities.tables import DocumentBlob

        try:
            value = _check_sha(sha256)
        except ValueError:
            return None
        table = DocumentBlob.__table__  # type: ignore[attr-defined]
        with self.store.connection(write=False) as conn:
            return conn.execute(
                sa.select(table.c.size).where(table.c.sha256 == value)
            ).scalar()

    def exists(self, sha256: str, size: int | None = None) -> bool:
        stored = self.size(sha256)
        return stored is not None and (size is None or stored == size)

    def put(self, data: bytes) -> str:
        from activities.tables import DocumentBlob

        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest, len(data)):
            return digest
        table = DocumentBlob.__table__  # type: ignore[attr-defined]
        try:
            with self.store.connection() as conn:
                conn.execute(table.insert().values(
                    sha256=digest, size=len(data), content=data, stored_at=utcnow()))
        except IntegrityError:
            pass  # another process stored the same bytes meanwhile: they are the same
        return digest

    def get(self, sha256: str) -> bytes:
        from activities.tables import DocumentBlob

        value = _check_sha(sha256)
        table = DocumentBlob.__table__  # type: ignore[attr-defined]
        with self.store.connection(write=False) as conn:
            data = conn.execute(
                sa.select(table.c.content).where(table.c.sha256 == value)
            ).scalar()
        if data is None:
            raise FileNotFoundError(f"blob {value[:12]}… not stored")
        return bytes(data)


class S3Blobs:
    """Blobs as objects ``prefix/ab/cdef…`` of an S3-compatible bucket (boto3)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: object | None = None):
        if not bucket:
            raise ValueError("GD_BLOB_URL s3:// sem bucket (ex.: s3://gd-documentos/gd)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3", endpoint_url=endpoint_url,
                config=Config(connect_timeout=5, read_timeout=30,
                              retries={"max_attempts": 3, "mode": "standard"}),
            )
        self.client: Any = client

    def __repr__(self) -> str:
        return f"S3Blobs('s3://{self.bucket}/{self.prefix}')"

    def key(self, sha256: str) -> str:
        value = _check_sha(sha256)
        name = f"{value[:2]}/{value[2:]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def path(self, sha256: str) -> _RemoteBlob:
        return _RemoteBlob(self, _check_sha(sha256))

    def _missing(self, error: Exception) -> bool:
        response = getattr(error, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def size(self, sha256: str) -> int | None:
        try:
            key = self.key(sha256)
        except ValueError:
            return None
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if self._missing(error):
                return None
            raise
        return int(head["ContentLength"])

    def exists(self, sha256: str, size: int | None = None) -> bool:
        stored = self.size(sha256)
        return stored is not None and (size is None or stored == size)

    def put(self, data: bytes) -> str:
        import base64

        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest, len(data)):
            return digest
        # The server checks the bytes against their SHA-256 (a torn upload is refused).
        self.client.put_object(
            Bucket=self.bucket, Key=self.key(digest), Body=data,
            ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode("ascii"),
        )
        return digest

    def get(self, sha256: str) -> bytes:
        from botocore.exceptions import ClientError

        key = self.key(sha256)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if self._missing(error):
                raise FileNotFoundError(f"blob {key} not stored") from None
            raise
        return answer["Body"].read()


Blobs = BlobStore | DatabaseBlobs | S3Blobs


def blob_backend(settings: Any) -> str:
    """``database``, ``s3`` or ``local``: where ``settings`` put the documents."""
    url = (getattr(settings, "blob_url", None) or "").strip()
    if not url:
        database = str(getattr(settings, "database_url", ""))
        return "database" if database.startswith("postgresql") else "local"
    if url in ("database", "db"):
        return "database"
    if url.startswith("s3://"):
        return "s3"
    if url == "local":
        return "local"
    raise ValueError(
        f"GD_BLOB_URL={url!r} não reconhecida: use database, s3://bucket/prefixo ou local"
    )


def open_blobs(settings: Any, store: Store) -> Blobs:
    """The blob store ``settings`` name (see the module doc)."""
    backend = blob_backend(settings)
    if backend == "database":
        return DatabaseBlobs(store)
    if backend == "s3":
        from urllib.parse import urlsplit

        parts = urlsplit(settings.blob_url.strip())
        return S3Blobs(parts.netloc, parts.path, endpoint_url=getattr(settings, "s3_endpoint_url", None))
    return BlobStore(settings.blob_dir)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def looks_executable(data: bytes, filename: str | None = None) -> bool:
    if data.startswith(_EXECUTABLE_MAGIC):
        return True
    return bool(filename) and Path(filename).suffix.lower() in _EXECUTABLE_SUFFIXES


def sniff_content_type(data: bytes, filename: str | None = None) -> str | None:
    """The content type by magic bytes, or None when not accepted (executables always).

    ``filename`` never makes content acceptable; an executable name (``.exe``, ``.sh``…)
    makes it unacceptable.
    """
    if not data or looks_executable(data, filename):
        return None
    if data.startswith(b"%PDF-"):
        return "application/pdf" if _parses_as_pdf(data) else None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png" if _decodes_as_image(data, "PNG") else None
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg" if _decodes_as_image(data, "JPEG") else None
    if _DWG.match(data[:6]):
        return "image/vnd.dwg"
    if data.startswith(_DXF_BINARY) or _DXF_TEXT.match(data[:4096]):
        return "image/vnd.dxf"
    return None


def _parses_as_pdf(data: bytes) -> bool:
    """A real PDF: nothing smuggled after the header, and pypdf reads at least a page."""
    if _SMUGGLED.search(data[:4096]):
        return False
    end = data.rfind(b"%%EOF")
    if end < 0 or data[end + 5:].strip(b" \t\r\n\x00\x0c"):
        return False  # no end marker, or something appended after it (a ZIP, a page)
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        return len(reader.pages) >= 1
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError, AssertionError):
        return False


def _decodes_as_image(data: bytes, image_format: str) -> bool:
    """PNG/JPEG that Pillow opens as that format and whose data verifies."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != image_format:
                return False
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def suffix_problem(filename: str, content_type: str) -> str | None:
    """Why ``filename`` does not fit ``content_type`` (an allowlist of extensions), or None."""
    suffix = Path(filename).suffix.lower()
    allowed = _ALLOWED_SUFFIXES.get(content_type, ())
    if suffix in allowed:
        return None
    if not suffix or suffix not in {s for group in _ALLOWED_SUFFIXES.values() for s in group}:
        return (f"extensão do nome de arquivo {suffix or '(nenhuma)'} não aceita; "
                f"aceitas: {ALLOWED_SUFFIXES_TEXT}")
    return (f"extensão {suffix} não corresponde ao conteúdo do arquivo "
            f"({content_type}; use {allowed[0]})")


def attachment_name(filename: str, content_type: str) -> str:
    """The name an e-mail gives a stored document: its name with the extension of the
    type its content was sniffed as (never a name the content does not fit)."""
    if suffix_problem(filename, content_type) is None:
        return filename
    return f"{Path(filename).stem or 'documento'}{_EXTENSIONS[content_type]}"


def _size_text(size: int) -> str:
    mb = f"{size / _MB:.1f}"
    if float(mb) * _MB <= MAX_DOCUMENT_BYTES:  # rounds to "3,0": give the exact bytes
        return f"{size:,} bytes".replace(",", ".")
    return f"{mb.replace('.', ',')} MB"


def _clean_filename(filename: str) -> str:
    name = Path(filename.replace("\\", "/")).name.strip()
    if not name or name in (".", ".."):
        raise UploadRefused("nome de arquivo vazio")
    if len(name) > 255:
        raise UploadRefused("nome de arquivo com mais de 255 caracteres")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UploadRefused("nome de arquivo contém caracteres de controle")
    return name


def upload(
    store: Store,
    blobs: Blobs,
    path_or_bytes: str | os.PathLike[str] | bytes,
    *,
    kind: str,
    filename: str | None = None,
    for_workflow: str | None = None,
) -> DocumentRef:
    """Check a file, store it once (blob + ``DocumentRecord``) and return its reference.

    ``for_workflow`` (a workflow id, e.g. ``gd-request-SOL-1``) links the document to that
    process, which may then cite it even if another process cited the same bytes first.

    Raises ``UploadRefused`` (one pt-BR message naming the rule) and stores nothing when
    the kind is unknown, the file is empty, larger than 3 MB, not an accepted type (by
    parsing it), or named with an extension outside the allowlist or not its type's.
    """
    if kind not in DOCUMENT_KINDS:
        raise UploadRefused(
            f"tipo de documento '{kind}' desconhecido; aceitos: {', '.join(DOCUMENT_KINDS)}"
        )
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data: bytes | None = bytes(path_or_bytes)
        size = len(data)
        source_name = filename
    else:
        source = Path(path_or_bytes)
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise UploadRefused(f"arquivo não encontrado: {source.name}") from None
        if not source.is_file():
            raise UploadRefused(f"não é um arquivo regular: {source.name}")
        data = None
        source_name = filename or source.name
    if size == 0:
        raise UploadRefused("arquivo vazio")
    if size > MAX_DOCUMENT_BYTES:
        raise UploadRefused(f"arquivo de {_size_text(size)} excede o limite de 3 MB")
    if data is None:
        data = Path(path_or_bytes).read_bytes()  # type: ignore[arg-type]
        size = len(data)
        if size == 0:
            raise UploadRefused("arquivo vazio")
        if size > MAX_DOCUMENT_BYTES:
            raise UploadRefused(f"arquivo de {_size_text(size)} excede o limite de 3 MB")
    name = _clean_filename(source_name) if source_name else None
    content_type = sniff_content_type(data, name)
    if content_type is None:
        hint = " (arquivo executável renomeado?)" if looks_executable(data, name) else ""
        raise UploadRefused(f"conteúdo não é {ACCEPTED_TYPES_TEXT}{hint}")
    if name is not None and (problem := suffix_problem(name, content_type)):
        raise UploadRefused(problem)
    if for_workflow is not None and not valid_workflow_id(for_workflow):
        raise UploadRefused("processo de destino inválido (id com mais de 200 caracteres "
                            "ou com caracteres de controle)")

    digest = blobs.put(data)
    if name is None:
        name = f"{kind}-{digest[:12]}{_EXTENSIONS[content_type]}"
    _record_document(store, digest, kind=kind, filename=name, size=size, content_type=content_type)
    if for_workflow is not None:
        from activities.documents import link

        link(store, digest, for_workflow, source="upload")
    return DocumentRef(
        sha256=digest, kind=kind, filename=name, size=size, content_type=content_type
    )


def _record_document(
    store: Store, digest: str, *, kind: str, filename: str, size: int, content_type: str
) -> None:
    """Insert the DocumentRecord unless present (the first upload's kind/name are kept)."""
    try:
        with store.session() as s:
            if s.get(DocumentRecord, digest) is None:
                s.add(
                    DocumentRecord(
                        sha256=digest,
                        kind=kind,
                        filename=filename,
                        size=size,
                        content_type=content_type,
                    )
                )
    except IntegrityError:
        pass  # a concurrent upload of the same content recorded it first
