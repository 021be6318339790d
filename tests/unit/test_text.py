from __future__ import annotations

from pytest_pgstandby._text import mask_secrets, tail


def test_masks_conninfo_uri_and_env_passwords() -> None:
    text = (
        "primary_conninfo = 'host=p port=5432 user=replicator password=replicator_password'\n"
        "postgresql://postgres:s3cret@127.0.0.1:5432/postgres\n"
        "PGPASSWORD=hunter2 pg_basebackup\n"
        "password='quoted secret' host=x\n"
        "primary_conninfo = 'host=x password=''my s3cret''' # postgresql.auto.conf quoting\n"
        "primary_conninfo = 'password=''it''''s a secret'' port=1'"
    )
    masked = mask_secrets(text)
    assert "port=1'" in masked and "# postgresql.auto.conf quoting" in masked
    for secret in ("replicator_password", "s3cret", "hunter2", "quoted secret", "a secret"):
        assert secret not in masked
    assert "user=replicator password=********'" in masked
    assert "host=x" in masked


def test_tail_keeps_the_last_lines_masked() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\npassword=x"
    assert tail(text, 2).splitlines() == ["    line 99", "    password=********"]
