"""Prints the conformance counts at the end of the client suite."""

import sys


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("test_conformance")
    if module is None:
        return
    worked, explained = module.OUTCOMES["worked"], module.OUTCOMES["explained"]
    terminalreporter.write_line(
        f"client conformance: {worked + explained} operations of {len(module.PACKAGES)} packages; "
        f"{worked} work, {explained} explained in EXPLAINED (not served or answering otherwise, with why)"
    )
