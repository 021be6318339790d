"""The initdb template: made once per binaries, version, options and account, even when
several processes (pytest-xdist workers) ask for it at the same moment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from pytest_pgstandby import Settings, binaries
from pytest_pgstandby.backends.accounts import binaries_for, run_account
from pytest_pgstandby.backends.template import PREFIX


def test_two_processes_asking_at_once_make_one_template(pgstandby_settings: Settings) -> None:
    base = Path(tempfile.mkdtemp(prefix="template-test-"))  # every account can traverse it
    base.chmod(0o755)
    bins = binaries_for(binaries.find(pgstandby_settings.pg_bin), run_account())
    script = textwrap.dedent(
        f"""
        import logging, sys
        from pathlib import Path
        from pytest_pgstandby.binaries import Binaries
        from pytest_pgstandby.backends.accounts import run_account
        from pytest_pgstandby.backends.template import template
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        bins = Binaries(Path({str(bins.bindir)!r}), {bins.version!r}, "test")
        env = {{"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}
        print(template(bins, run_account(), Path({str(base)!r}), env, 120))
        """
    )
    try:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [child.communicate(timeout=120) for child in children]
        assert [child.returncode for child in children] == [0, 0], results
        paths = {out.strip() for out, _ in results}
        assert len(paths) == 1, paths
        made = Path(paths.pop())
        assert (made / "data" / "PG_VERSION").read_text().strip() == str(bins.major)
        logs = "".join(err for _, err in results)
        assert logs.count("made the initdb template") == 1, logs
        assert [p.name for p in base.iterdir() if p.name.startswith(PREFIX)] == [made.name]
        assert not [p for p in base.iterdir() if "staging" in p.name]
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    assert not os.path.exists(base)
