"""Drives Sluice with python-sparkpost 1.3.10, unchanged but for the host.

Run by tests/compatibility.rs with SLUICE_HOST (host:port of Sluice's HTTPS API), SLUICE_KEY and
REQUESTS_CA_BUNDLE (the test's self-signed certificate). Prints one JSON object with what each
call returned, for the Rust test to check against what the SMTP sink received.
"""

import base64
import json
import os
import tempfile

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

# An attachment read from a file, which the client base64-encodes itself.
with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
    handle.write(bytes(range(256)) * 4)
out["attachment"] = sp.transmissions.send(
    recipients=["files@example.test"],
    from_email="shop@sender.test",
    subject="your invoice",
    text="the invoice is attached",
    attachments=[{"name": "facture-été.bin", "type": "application/octet-stream",
                  "filename": handle.name}],
)
os.unlink(handle.name)

out["inline_image"] = sp.transmissions.send(
    recipients=["image@example.test"],
    from_email="shop@sender.test",
    subject="our logo",
    html='<p><img src="cid:logo.png" alt="logo"></p>',
    inline_images=[{"name": "logo.png", "type": "image/png",
                    "data": base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()}],
)

# Bare LF line endings, as a Python string naturally has them.
out["rfc822"] = sp.transmissions.send(
    recipients=[{"address": {"email": "raw@example.test"}, "substitution_data": {"first": "Rae"}}],
    email_rfc822="From: Shop <shop@sender.test>\nTo: raw@example.test\n"
                 "Subject: Raw for {{first}}\n\nHello {{first}}, this came raw.\n",
)

# Stored templates, managed the way python-sparkpost sends every call: each field it was not
# given goes out as null.
sp.templates.create(id="py-welcome", name="Welcome", from_email="shop@sender.test",
                    subject="Welcome {{first}}", text="Draft for {{first}}")
out["template_draft"] = sp.templates.get("py-welcome", draft=True)
sp.templates.update("py-welcome", from_email="Shop <shop@sender.test>",
                    subject="Welcome {{first}}", text="Hello {{first}}, published",
                    html="<p>Hello {{first}}</p>")
sp.templates.update("py-welcome", published=True)
out["template_published"] = sp.templates.get("py-welcome", draft=False)
out["template_preview"] = sp.templates.preview("py-welcome", {"first": "Pia"})
out["template_list"] = sorted(t["id"] for t in sp.templates.list())
out["template_send"] = sp.transmissions.send(
    recipients=[{"address": "tia@example.test", "substitution_data": {"first": "Tia"}}],
    template="py-welcome",
)
sp.templates.create(id="py-scratch", name="Scratch", from_email="shop@sender.test",
                    subject="s", text="t")
out["template_delete"] = sp.templates.delete("py-scratch")
try:
    sp.templates.get("py-scratch")
    out["template_after_delete"] = "found"
except SparkPostAPIException as error:
    out["template_after_delete"] = {"status": error.status}

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
