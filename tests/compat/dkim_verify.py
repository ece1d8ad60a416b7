"""Verifies the DKIM signature of one message with dkimpy, a verifier this project did not write.

Usage: dkim_verify.py MESSAGE_FILE TXT_RECORD
The TXT record stands in for DNS: dkimpy asks for it by name, and gets it whatever the name.
Prints "pass" or "fail: <reason>"; exits 0 either way so the caller reads the verdict.
"""

import sys

import dkim

message = open(sys.argv[1], "rb").read()
record = sys.argv[2].encode()


def dns(name, timeout=5):
    return record


try:
    ok = dkim.verify(message, dnsfunc=dns)
    print("pass" if ok else "fail: signature does not verify")
except dkim.DKIMException as error:
    print("fail: %s" % error)
