"""Starts an sfsim over HTTPS for the simple-salesforce tests."""
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[3]


class Sim:
    def __init__(self, base_url, cert):
        self.base_url = base_url
        self.cert = cert

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}/__sim/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        ctx = __import__("ssl").create_default_context(cafile=self.cert)
        with urllib.request.urlopen(req, context=ctx) as r:
            text = r.read()
            return json.loads(text) if text else None

    def token(self):
        r = requests.post(f"{self.base_url}/services/oauth2/token", verify=self.cert, data={
            "grant_type": "password",
            "client_id": "sfsim-client-id",
            "client_secret": "sfsim-client-secret",
            "username": "admin@sfsim.example",
            "password": "sfsim-passwordSFSIMTOKEN",
        })
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    binary = os.environ.get("SFSIM_BIN", str(REPO / "target" / "debug" / "sfsim"))
    tls_dir = tmp_path_factory.mktemp("tls")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--tls", "--tls-dir", str(tls_dir), "--records", "Contact=4500"],
        stdout=subprocess.PIPE, text=True)
    base_url = proc.stdout.readline().strip()
    cert = proc.stdout.readline().strip().removeprefix("tls-cert: ")
    assert base_url.startswith("https://127.0.0.1:"), base_url
    # How requests users trust a private CA; it takes precedence over Session.verify.
    os.environ["REQUESTS_CA_BUNDLE"] = cert
    yield Sim(base_url, cert)
    proc.terminate()
    proc.wait(timeout=10)
