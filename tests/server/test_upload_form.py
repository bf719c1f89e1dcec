"""The upload route's form parsing (python-multipart, no FastAPI): what each body gives, and its 422s."""

from __future__ import annotations

import pytest

from sleeptrack.server._errors import ApiError, Detail
from sleeptrack.server._upload import MAX_PARTS, UploadForm, parse_upload_form

BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: application/octet-stream\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def _body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def test_a_multipart_upload_gives_the_file_bytes_and_the_fields() -> None:
    chunk = bytes(range(256)) * 500 + b"\r\n--not-the-boundary\r\n"  # binary, with CRLFs and dashes inside
    body = _body(
        _part("seq_num", b"42"),
        _part("file", chunk, "chunk.mel"),
        _part("callback_url", "https://example.com/h?é=1".encode()),
        _part("something_else", b"ignored"),
    )
    assert parse_upload_form(MULTIPART, body) == UploadForm(chunk, "42", "https://example.com/h?é=1")


def test_what_a_part_is_decides_how_it_counts() -> None:
    # the file sent as a plain field is no file; seq_num sent as a file is no seq_num; the last value wins
    body = _body(_part("file", b"abc"), _part("seq_num", b"1", "seq.txt"), _part("callback_url", b"x"))
    assert parse_upload_form(MULTIPART, body) == UploadForm(None, None, "x")
    body = _body(_part("seq_num", b"1"), _part("seq_num", b"2"), _part("file", b"a", "a"), _part("file", b"b", "b"))
    assert parse_upload_form(MULTIPART, body) == UploadForm(b"b", "2", None)


def test_url_encoded_and_other_bodies() -> None:
    form = parse_upload_form("application/x-www-form-urlencoded", b"seq_num=3&callback_url=https%3A%2F%2Fa.b%2Fc")
    assert form == UploadForm(None, "3", "https://a.b/c")
    at_most = "&".join(f"f{i}=1" for i in range(MAX_PARTS - 1)).encode() + b"&seq_num=4"
    assert parse_upload_form("application/x-www-form-urlencoded", at_most) == UploadForm(None, "4", None)
    assert parse_upload_form("application/json", b'{"seq_num": 1}') == UploadForm()
    assert parse_upload_form(None, b"anything") == UploadForm()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", _body(_part("seq_num", b"1"))),  # no boundary
        (MULTIPART, b"--b0undary\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b0undary--\r\n"),  # no name
        (MULTIPART, b"--other\r\n\x00\x01garbage"),
        (MULTIPART, _body(*[_part(f"f{i}", b"1") for i in range(MAX_PARTS + 1)])),  # too many parts
        ("application/x-www-form-urlencoded", "&".join(f"f{i}=1" for i in range(MAX_PARTS + 1)).encode()),
    ],
    ids=["no boundary", "no name", "garbage", "too many parts", "too many url-encoded fields"],
)
def test_an_unreadable_form_is_invalid_parameter(content_type: str, body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_upload_form(content_type, body)
    assert (caught.value.status, caught.value.detail) == (422, Detail.INVALID_PARAMETER)
