"""A streamed ``multipart/form-data`` reader with a hard size limit.

The body is read chunk by chunk and fed to python-multipart's push parser; the file part
is kept in memory only up to the limit: the first byte over it ends the read (413)
without reading the rest of the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from api.problems import ApiProblem
from models.common import MAX_DOCUMENT_BYTES

# Form fields besides the file, and multipart framing, fit easily in this much.
OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 1024


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    file: bytearray | None = None
    filename: str | None = None


def too_large() -> ApiProblem:
    return ApiProblem(413, "file_too_large", "arquivo excede o limite de 3 MB")


async def read_form(content_type: str | None, content_length: str | None, stream: AsyncIterator[bytes]) -> Form:
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiProblem(
            415, "not_multipart", "envie o arquivo como multipart/form-data (campos file e kind)"
        )
    limit = MAX_DOCUMENT_BYTES + OVERHEAD_BYTES
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise too_large()  # told up front: nothing of the body is read

    form = Form()
    state: dict = {"headers": {}, "field": b"", "value": b"", "name": None, "is_file": False, "buf": bytearray()}

    def on_part_begin() -> None:
        state["headers"] = {}
        state["buf"] = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        state["is_file"] = name == "file"
        if state["is_file"]:
            raw = disp.get(b"filename")
            form.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        buf: bytearray = state["buf"]
        buf += data[start:end]
        cap = MAX_DOCUMENT_BYTES if state["is_file"] else MAX_FIELD_BYTES
        if len(buf) > cap:
            if state["is_file"]:
                raise _Stop(too_large())
            raise _Stop(ApiProblem(422, "field_too_long", f"campo {state['name']}: longo demais",
                                   [{"field": state["name"] or "", "code": "too_long", "message": "longo demais"}]))

    def on_part_end() -> None:
        if state["is_file"]:
            form.file = state["buf"]
        elif state["name"]:
            form.fields[state["name"]] = bytes(state["buf"]).decode("utf-8", "replace")

    parser = MultipartParser(
        params[b"boundary"],
        callbacks={
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                raise too_large()
            parser.write(chunk)
        parser.finalize()
    except _Stop as stop:
        raise stop.problem from None
    except ApiProblem:
        raise
    except Exception:  # noqa: BLE001 - python-multipart's MultipartParseError and friends
        raise ApiProblem(400, "bad_multipart", "corpo multipart malformado") from None
    return form


class _Stop(Exception):
    def __init__(self, problem: ApiProblem):
        self.problem = problem
