"""Checks an OCDS release package with lib-cove-ocds (PyPI `libcoveocds`,
the library behind the OCDS Data Review Tool), offline.

    python3 tests/ocds/validate.py PACKAGE.json

lib-cove-ocds fetches the standard's schema and each extension's files over
the network. Here they come from the copies beside this script (see SOURCE):
the standard by lib-cove-ocds' own `standard_zip` option, the bids extension
by a requests adapter mounted on the session that ocdsextensionregistry
fetches extensions with, for the exact URL the package names. Any other
network use fails, so nothing is checked against files other than these.

Prints one JSON object: the validation errors, the additional fields, the
extensions and whether each loaded, and the additional checks' findings
(fields set but empty). Exits 0 whatever it found (the caller
judges), 2 if the tool itself could not run.
"""

import io
import json
import socket
import sys
import tempfile
import zipfile
from pathlib import Path

import requests
from requests.adapters import BaseAdapter

HERE = Path(__file__).resolve().parent
STANDARD = HERE / "standard-1__1__5"
BID_EXTENSION = HERE / "ocds_bid_extension-v1.1.5"
# The files of each extension the package may name, by URL prefix.
EXTENSIONS = {
    "https://raw.githubusercontent.com/open-contracting-extensions/ocds_bid_extension/v1.1.5/": BID_EXTENSION,
}
# ocdsextensionregistry reads an extension on GitHub from the archive of its
# tag, the whole repository as a ZIP.
ARCHIVES = {
    "https://github.com/open-contracting-extensions/ocds_bid_extension/archive/v1.1.5.zip": BID_EXTENSION,
}


def no_network(*args, **kwargs):
    raise OSError("network use is blocked in this check: every file must come from tests/ocds")


socket.create_connection = no_network
socket.socket.connect = no_network


class Vendored(BaseAdapter):
    """Answers GETs under the extensions' URLs from the vendored copies."""

    def send(self, request, **kwargs):
        response = requests.Response()
        response.request = request
        response.url = request.url
        if request.url in ARCHIVES:
            response.status_code = 200
            response._content = zipped(ARCHIVES[request.url], "extension/")
            response.reason = "vendored"
            return response
        for prefix, directory in EXTENSIONS.items():
            if request.url.startswith(prefix):
                path = directory / request.url[len(prefix) :]
                if path.is_file():
                    response.status_code = 200
                    response._content = path.read_bytes()
                else:
                    response.status_code = 404
                    response._content = b""
                response.reason = "vendored"
                return response
        raise requests.ConnectionError(f"not vendored, and the network is blocked: {request.url}")

    def close(self):
        pass


def zipped(directory, top, under=""):
    """The files under `directory` (or its `under` subfolder) as a ZIP whose
    first entry is the folder `top`, as GitHub's archives are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(top, "")
        for path in sorted((directory / under).rglob("*")):
            if path.is_file():
                z.write(path, arcname=f"{top}{path.relative_to(directory)}")
    return buffer.getvalue()


def main():
    if len(sys.argv) != 2:
        print("usage: validate.py PACKAGE.json", file=sys.stderr)
        return 2
    from libcoveocds.api import ocds_json_output
    from libcoveocds.config import LibCoveOCDSConfig
    from ocdsextensionregistry import util

    adapter = Vendored()
    for prefix in [*EXTENSIONS, *ARCHIVES]:
        util.session.mount(prefix, adapter)
    config = LibCoveOCDSConfig()
    config.config["context"] = "api"
    config.config["standard_zip"] = zipped(STANDARD, "standard-1__1__5/", "schema")
    with open(sys.argv[1], "rb") as f:
        data = json.load(f)
    # requests-cache would store the vendored answers; there is nothing to keep.
    # It writes the extended schema into its output folder: a temporary one.
    with util.session.cache_disabled(), tempfile.TemporaryDirectory() as out:
        result = ocds_json_output(out, sys.argv[1], schema_version="1.1", json_data=data, lib_cove_ocds_config=config)
    extensions = result.get("extensions") or {}
    out = {
        "validation_errors": result.get("validation_errors", []),
        "additional_fields": sorted({f["path"] + "/" + f["field"] for f in result.get("additional_fields", [])}),
        "extensions": [e.get("url") for e in extensions.get("extensions", []) if e],
        "invalid_extension": extensions.get("invalid_extension", {}),
        "is_extended_schema": extensions.get("is_extended_schema", False),
        "version_used": result.get("version_used"),
        # lib-cove-ocds' additional checks (empty_field: "", [] or {} set).
        "additional_checks": result.get("additional_checks") or {},
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
