#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# scrape.py URL
#
# Scrape a Prometheus text endpoint as Prometheus would and read it with a
# real parser (Debian's python3-prometheus-client:
# prometheus_client.parser.text_string_to_metric_families, which raises on
# what the 0.0.4 text format does not allow). Prints one JSON object:
# {"content_type": ..., "families": {NAME: {"type": T, "samples":
# [[sample name, {labels}, value], ...]}}}. Exit status 1 with the error on
# stderr when the fetch or the parse fails.
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        ctype = r.headers.get("Content-Type")
        text = r.read().decode("utf-8")
    fams = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in fams:
            raise ValueError("family %s twice" % fam.name)
        fams[fam.name] = {
            "type": fam.type,
            "samples": [[s.name, s.labels, s.value] for s in fam.samples],
        }
    print(json.dumps({"content_type": ctype, "families": fams}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except Exception as e:
        print("scrape: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
