"""The chDB SQL endpoint guards analysts' requests: host files never come back, reads still work."""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import clickhouse_connect
import pytest

from classtrace.chserver import ChdbHttpServer
from classtrace.sqlguard import READER_USER

pytestmark = pytest.mark.integration

PASSWD = Path("/etc/passwd").read_text().splitlines()[0]  # e.g. "root:x:0:0:root:/root:/bin/bash"


@pytest.fixture(scope="module")
def server(chdb_path):
    with ChdbHttpServer(chdb_path) as srv:
        yield srv


def post(server, sql, *, user=READER_USER, secret=None, **params):
    url = f"http://127.0.0.1:{server.port}/?" + urllib.parse.urlencode(params)
    auth = base64.b64encode(f"{user}:{secret or server.reader_password}".encode()).decode()
    request = urllib.request.Request(url, sql.encode(), {"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT file('/etc/passwd')", "file()"),
        ("SELECT * FROM file('/etc/passwd', LineAsString)", "table function file()"),
        ("SELECT line FROM file('/etc/passwd', LineAsString, 'line String') FORMAT TSVRaw", "file()"),
        ("SELECT 1; SELECT file('/etc/passwd')", "more than one statement"),
        (
            "/* /* */ SELECT 1 */ INSERT INTO FUNCTION file('/tmp/x', LineAsString) FORMAT LineAsString\nx",
            "INSERT",
        ),
        ("SELECT 1 INTO OUTFILE '/tmp/classtrace-endpoint-test'", "INTO OUTFILE"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
    ],
)
def test_host_files_never_come_back(server, sql, named, tmp_path):
    for user, secret in ((READER_USER, server.reader_password), (READER_USER, server.password),
                         ("viewer", server.reader_password)):  # fmt: skip
        status, headers, body = post(server, sql, user=user, secret=secret)
        assert status == 403, body
        assert headers["X-ClickHouse-Exception-Code"] == "497"
        assert named in body and "ACCESS_DENIED" in body
        assert PASSWD not in body


def test_settings_that_lift_the_fence_are_refused(server):
    for name in ("readonly", "allow_ddl", "format_schema", "output_format_schema"):
        status, _, body = post(server, "SELECT 1", **{name: "0"})
        assert status == 403 and name in body


def test_the_readonly_fence_is_on(server):
    status, _, body = post(server, "SELECT getSetting('readonly')")
    assert (status, body) == (200, "1\n")


def test_a_stock_client_reads_with_the_reader_url_and_parameters(server):
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, username=READER_USER, password=server.reader_password
    )
    try:
        assert client.command("SELECT {n:UInt32} + 1", parameters={"n": 41}) == 42
        assert "one" in client.query("SHOW TABLES FROM system").result_columns[0]
        assert server.reader_url.startswith(f"http://{READER_USER}:")
    finally:
        client.close()


def test_the_owner_secret_stays_trusted_for_the_stacks_roles(server):
    status, _, body = post(server, "SELECT getSetting('readonly')", user="classtrace", secret=server.password)
    assert (status, body) == (200, "0\n")
