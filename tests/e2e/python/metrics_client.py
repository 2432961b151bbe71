#!/usr/bin/env python3
"""A Prometheus scraper for the gregor e2e tests: GETs /metrics over HTTP (urllib) and parses the
page with Prometheus' own Python client (prometheus_client's text parser), which also rejects a
page that breaks the text format.

usage:
  metrics_client.py scrape URL [URL ...] [--timeout SECONDS]
  metrics_client.py request METHOD URL [--timeout SECONDS]

scrape asks for gzip, as Prometheus does, and prints {"pages": [page, ...]}, one per URL in
order; a page is {"status": 200, "content_type": "...", "content_encoding": "gzip" | "", "families": {name: type}, "samples": [[name, {label: value}, value],
...], "seconds": s}, or {"error": "...", "seconds": s} when the HTTP request itself failed
(refused, reset, timed out, or a status other than 200). A page that does not parse fails the
script.
request prints {"status": n | null, "error": null | "...", "body": "...", "seconds": s}.
"""
import argparse
import gzip
import math
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from common import emit, fail


def fetch(method, url, timeout, gzip_ok=False):
    """(status, content type, content encoding, body) of one request; raises what urllib
    raises, except that an HTTP error status is an answer, not an error. With `gzip_ok` it asks
    for gzip as Prometheus does and inflates a gzipped answer."""
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            encoding = resp.headers.get("Content-Encoding", "")
            raw = resp.read()
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            return resp.status, resp.headers.get("Content-Type", ""), encoding, raw.decode()
    except urllib.error.HTTPError as e:
        return (e.code, e.headers.get("Content-Type", ""), "",
                e.read().decode("utf-8", "replace"))


def scrape_one(url, timeout):
    start = time.monotonic()
    try:
        status, content_type, encoding, body = fetch("GET", url, timeout, gzip_ok=True)
    except Exception as e:  # noqa: BLE001 - the test judges any failure to answer
        return {"error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - start}
    seconds = time.monotonic() - start
    if status != 200:
        return {"error": f"HTTP {status}: {body[:200]}", "seconds": seconds}
    families, samples = {}, []
    try:
        for family in text_string_to_metric_families(body):
            families[family.name] = family.type
            for s in family.samples:
                # JSON has no NaN: a NaN sample (an average without samples) goes as null.
                value = None if math.isnan(s.value) else s.value
                samples.append([s.name, s.labels, value])
    except Exception as e:  # noqa: BLE001 - a page the parser refuses fails the test
        fail(f"{url}: the page does not parse as Prometheus text ({type(e).__name__}: {e}); "
             f"page starts:\n{body[:2000]}")
    return {"status": status, "content_type": content_type, "content_encoding": encoding,
            "families": families,
            "samples": samples, "seconds": seconds}


def scrape(args):
    emit({"pages": [scrape_one(url, args.timeout) for url in args.urls]})


def request(args):
    start = time.monotonic()
    try:
        status, _, _, body = fetch(args.method, args.url, args.timeout)
        doc = {"status": status, "error": None, "body": body}
    except Exception as e:  # noqa: BLE001 - reported, the test decides
        doc = {"status": None, "error": f"{type(e).__name__}: {e}", "body": ""}
    doc["seconds"] = time.monotonic() - start
    emit(doc)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scrape")
    s.add_argument("urls", nargs="+")
    s.add_argument("--timeout", type=float, default=10)
    r = sub.add_parser("request")
    r.add_argument("method")
    r.add_argument("url")
    r.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    {"scrape": scrape, "request": request}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
