"""Drives Sluice with python-sparkpost 1.3.10, unchanged but for the host.

Run by tests/compatibility.rs with SLUICE_HOST (host:port of Sluice's HTTPS API), SLUICE_KEY and
REQUESTS_CA_BUNDLE (the test's self-signed certificate). Prints one JSON object with what each
call returned, for the Rust test to check against what the SMTP sink received.
"""

import json
import os

from sparkpost import SparkPost
from sparkpost.exceptions import SparkPostAPIException

sp = SparkPost(os.environ["SLUICE_KEY"], base_uri=os.environ["SLUICE_HOST"])
out = {}

out["personalised"] = sp.transmissions.send(
    recipients=[
        {"address": {"email": "ann@example.test", "name": "Ann Lee"},
         "substitution_data": {"first": "Ann"}},
        "Bob Stone <bob@example.test>",
    ],
    from_email="Shop <shop@sender.test>",
    subject="Hello {{first or 'friend'}}",
    text="Dear {{first or 'friend'}}, this is {{shop}}.",
    html="<p>Dear {{first or 'friend'}}</p>",
    substitution_data={"shop": "the shop"},
    campaign="compat",
    track_opens=False,
    transactional=True,
)

out["copies"] = sp.transmissions.send(
    recipients=["to@example.test"],
    cc=["cc@example.test"],
    bcc=["bcc@example.test"],
    from_email="shop@sender.test",
    subject="copies",
    text="one message, three envelopes",
)

out["get"] = sp.transmissions.get(out["personalised"]["id"])
out["list"] = sp.transmissions.list(campaign_id="compat")

try:
    sp.transmissions.send(recipients=[], from_email="shop@sender.test", subject="s", text="t")
    out["empty"] = "accepted"
except SparkPostAPIException as error:
    out["empty"] = {"status": error.status, "errors": error.errors}

try:
    SparkPost("wrong-key", base_uri=os.environ["SLUICE_HOST"]).transmissions.send(
        recipients=["x@example.test"], from_email="shop@sender.test", subject="s", text="t")
    out["unauthorized"] = "accepted"
except SparkPostAPIException as error:
    out["unauthorized"] = {"status": error.status}

print(json.dumps(out))
