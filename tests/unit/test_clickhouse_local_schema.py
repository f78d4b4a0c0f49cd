"""Inline format schemas become files under the chDB directory, never in the working directory."""

from __future__ import annotations

from pathlib import Path

from classtrace.clickhouse import engine_dir, local_schema_settings


def test_an_inline_schema_is_written_once_under_the_engine_directory(tmp_path):
    inline = {
        "format_schema_source": "string",
        "format_schema": 'syntax = "proto3";\nmessage M { string a = 1; }\n',
        "format_schema_message_name": "M",
        "insert_deduplication_token": "t1",
    }
    first = local_schema_settings(inline, tmp_path)
    path, _, message = first["format_schema"].rpartition(":")
    assert message == "M" and first["insert_deduplication_token"] == "t1"
    assert "format_schema_source" not in first and "format_schema_message_name" not in first
    assert Path(path).read_text() == inline["format_schema"]
    assert path.startswith(str(tmp_path / "format_schemas"))
    assert local_schema_settings(inline, tmp_path) == first  # same content, same file
    changed = local_schema_settings({**inline, "format_schema": inline["format_schema"] + "\n"}, tmp_path)
    assert changed["format_schema"] != first["format_schema"]


def test_other_settings_pass_through_untouched(tmp_path):
    settings = {"format_schema": "/abs/file.proto:M", "max_threads": 2}
    assert local_schema_settings(settings, tmp_path) == settings
    assert not (tmp_path / "format_schemas").exists()


def test_only_embedded_clients_have_an_engine_directory():
    class ChdbClient:  # a stand-in named like clickhouse-connect's
        path = "/data/chdb"

    class HttpClient:
        path = "/ignored"

    assert str(engine_dir(ChdbClient())) == "/data/chdb"
    assert engine_dir(HttpClient()) is None
