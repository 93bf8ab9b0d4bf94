"""Figure 5, against what a user would write instead: a sequential requests-style loop (stdlib urllib,
one POST after another) over the same spreadsheet, against an emulator with 50 ms latency. Prints our
wall time divided by theirs, at --rate 100 and at the default --rate 10.

    .venv/bin/python bench/sequential.py --rows 500
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
from pathlib import Path

from common import PY, EmulatorProcess, timed, write_offers

LOOP = textwrap.dedent('''
    import csv, json, sys, urllib.parse, urllib.request
    url, cid, secret, org, path = sys.argv[1:6]
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": cid,
                                   "client_secret": secret, "scope": "openid"}).encode()
    token = json.load(urllib.request.urlopen(url + "/ims/token/v3", form))["access_token"]
    h = {"Authorization": "Bearer " + token, "x-api-key": cid, "x-gw-ims-org-id": org, "x-sandbox-name": "prod",
         "Content-Type": "application/json"}
    for row in csv.DictReader(open(path)):
        body = {"name": row["name"], "status": "approved",
                "selectionConstraint": {"startDate": row["start_date"] + "T00:00:00.000+00:00",
                                        "endDate": row["end_date"] + "T23:59:59.999+00:00",
                                        "profileConstraintType": "none"},
                "representations": [{"channel": "https://ns.adobe.com/xdm/channel-types/" + row["channel"],
                                     "placement": row["placement"], "components": [{
                                         "type": row["component_type"], "format": "image/png",
                                         "deliveryURL": row["delivery_url"]}]}],
                "rank": {"priority": int(row["priority"])}}
        req = urllib.request.Request(url + "/data/core/dps/offers?offer-type=fallback",
                                     data=json.dumps(body).encode(), headers=h, method="POST")
        urllib.request.urlopen(req).read()
''')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulkoffers-sequential-"))
    source = write_offers(work / "offers.csv", args.rows)
    (work / "loop.py").write_text(LOOP)
    with EmulatorProcess("--latency-ms", "50", "--max-offers", str(args.rows * 4)) as emu:
        cred = emu.args()[4:]
        theirs, out = timed([PY, str(work / "loop.py"), emu.url, cred[1], cred[3], cred[5], str(source)])
        assert out.returncode == 0, out.stderr
        results = {}
        for rate in ("100", "10"):
            emu.reset()
            wall, out = timed([PY, "-m", "bulkoffers", "import", str(source), *emu.args(), "--rate", rate,
                               "--results", str(work / f"r{rate}.csv"), "-q"])
            assert out.returncode == 0, out.stderr
            results[rate] = wall
    print(f"{args.rows} rows, emulator latency 50 ms")
    print(f"sequential urllib loop:        {theirs:6.1f} s ({args.rows / theirs:5.1f} rows/s)")
    for rate, wall in results.items():
        print(f"bulkoffers import --rate {rate:>3}: {wall:6.1f} s ({args.rows / wall:5.1f} rows/s); "
              f"ours / theirs: {wall / theirs:.2f}")


if __name__ == "__main__":
    main()
