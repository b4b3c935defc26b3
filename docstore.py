"""Documents as the client sees them: upload a file to the blob store (once, by its sha256)
and find an uploaded one, reading the store and blob directory of the ``GD_*`` settings.
No Temporal here: a DocumentRef is what the workflows receive.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gd_errors import GdRefused
from models.common import DocumentRef, parse_or_problems
from models.settings import GdSettings

if TYPE_CHECKING:
    from activities.blobs import Blobs
    from activities.store import Store

SHA256 = re.compile(r"[0-9a-f]{64}")


def _open_store(settings: GdSettings) -> tuple["Store", "Blobs"]:
    # Imported here, not at the top: the store brings sqlmodel/SQLAlchemy, measured at
    # 0.5-0.6 s of import on this machine (`python -c "import activities.blobs"`), which
    # every `gd` command would pay while most never touch a document.
    from activities.blobs import open_blobs
    from activities.store import Store

    store = Store(settings.database_url)
    store.create_schema()  # idempotent; the CLI may run before the first worker did
    return store, open_blobs(settings, store)


class Documents:
    """Upload and look up files in the configured store and blob directory (no Temporal)."""

    def __init__(self, settings: GdSettings):
        self.settings = settings
        self._opened: tuple[Store, Blobs] | None = None

    def _open(self) -> tuple["Store", "Blobs"]:
        if self._opened is None:
            self._opened = _open_store(self.settings)
        return self._opened

    @property
    def store(self) -> "Store":
        return self._open()[0]

    def upload(self, path: str | os.PathLike[str] | bytes, kind: str, filename: str | None = None) -> DocumentRef:
        """Store a file once; ``UploadRefused`` (a ValueError, pt-BR) when it breaks a rule."""
        # The same measured reason as in _open_store: only commands with documents pay it.
        from activities.blobs import UploadRefused, upload

        store, blobs = self._open()
        try:
            return upload(store, blobs, path, kind=kind, filename=filename)
        except UploadRefused as error:
            name = filename or (None if isinstance(path, bytes) else Path(path).name)
            if name and name not in str(error):
                raise UploadRefused(f"{name}: {error}") from None
            raise

    def get(self, sha256: str, kind: str | None = None) -> DocumentRef:
        """The DocumentRef of an uploaded file by its sha256 (optionally under another kind)."""
        digest = sha256.strip().lower()
        if not SHA256.fullmatch(digest):
            raise GdRefused(f"sha256 inválido: {sha256!r} (64 caracteres hexadecimais)")
        store, blobs = self._open()
        record = store.document(digest)
        if record is None or not blobs.exists(digest, record.size):
            raise GdRefused(
                f"documento {digest[:12]}… não encontrado no repositório de arquivos: "
                "envie-o antes com `gd docs upload`"
            )
        raw: dict[str, Any] = {
            "sha256": digest,
            "kind": kind or record.kind,
            "filename": record.filename,
            "size": record.size,
            "content_type": record.content_type,
        }
        parsed, problems = parse_or_problems(DocumentRef, raw)
        if problems:
            raise GdRefused("documento: " + "; ".join(str(p) for p in problems), problems)
        assert parsed is not None
        return parsed

    def resolve(self, spec: str, default_kind: str | None = None, base: Path | None = None) -> DocumentRef:
        """``kind=path``, ``kind=sha256``, ``path`` or ``sha256`` → DocumentRef (uploading a path)."""
        kind, sep, target = spec.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+", kind.strip()):
            kind, target = default_kind or "", spec
        kind, target = kind.strip(), target.strip()
        path = Path(target).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if re.fullmatch(r"[0-9A-Fa-f]{64}", target) and not path.exists():
            return self.get(target, kind or None)
        if not kind:
            raise GdRefused(f"documento {target!r}: informe o tipo, como tipo=caminho (ex.: art_rrt={target})")
        return self.upload(path, kind)
