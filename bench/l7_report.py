# SPDX-License-Identifier: Apache-2.0
# The report of `make bench` section l7 (scripts/bench.sh): reads the rows the section measured (wrk outputs,
# proxy CPU ticks, RSS), writes BUILD/bench/l7.json and prints the table with the ratios against HAProxy.
import json
import re
import sys

out, rows_file, tck, secs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
hap_v, ngx_v, wrk_v, kernel, cpu, nproc, tree, load, cpu_cli, cpu_proxy, idle = sys.argv[6:17]


def to_us(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]


def parse_wrk(path):
    t = open(path).read()
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
         "requests": int(re.search(r"(\d+) requests in", t).group(1))}
    for p in ("50", "99"):
        r["p" + p + "_us"] = to_us(re.search(r"^\s+" + p + r"%\s+(\S+)", t, re.M).group(1))
    m = re.search(r"Socket errors: (.*)", t)
    r["socket_errors"] = m.group(1).strip() if m else ""
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non_2xx"] = int(m.group(1)) if m else 0
    return r


results = {}
for line in open(rows_file):
    f = line.rstrip("\n").split("\t")
    name = f[0]
    if f[1] == "error":
        results[name] = {"error": f[2]}
        continue
    kv = dict(x.strip().split("=", 1) for x in open(f[2]) if "=" in x)
    row = {"addr": f[3]}
    for c in ("1", "32"):
        w = parse_wrk(kv["wrk_c" + c])
        if "cpu_ticks_c" + c in kv:
            w["cpu_us_per_req"] = int(kv["cpu_ticks_c" + c]) * 1e6 / tck / w["requests"]
        row["c" + c] = w
    if "rss_idle_kb" in kv:
        row["rss_base_kb"], row["rss_idle_kb"] = int(kv["rss_base_kb"]), int(kv["rss_idle_kb"])
        row["idle_conns"] = int(kv["idle_held"])
    results[name] = row


def ok(name):
    return name in results and "error" not in results[name]


def get(name, c, k):
    return results[name]["c" + c].get(k) if ok(name) else None


ratios = {}
if ok("haproxy"):
    for name in results:
        if name in ("direct", "haproxy") or "." in name or not ok(name):
            continue
        r = {}
        for c in ("1", "32"):
            a, b = get(name, c, "cpu_us_per_req"), get("haproxy", c, "cpu_us_per_req")
            r["cpu_per_req_c" + c] = a / b if a is not None and b else None
            r["rps_c" + c] = get(name, c, "rps") / get("haproxy", c, "rps")
            if ok("direct"):
                d = get("direct", c, "p50_us")
                mine, hap = get(name, c, "p50_us") - d, get("haproxy", c, "p50_us") - d
                r["added_p50_c" + c] = mine / hap if hap > 0 else None
        if "rss_idle_kb" in results[name] and "rss_idle_kb" in results["haproxy"]:
            r["rss_idle"] = results[name]["rss_idle_kb"] / results["haproxy"]["rss_idle_kb"]
        ratios[name] = r

# xmesh_policy (issue 14): the same route with retries, a fault that never fires, outlier detection and a
# connection pool, against the plain xmesh row of the same round (L7_ROUNDS: rows xmesh, xmesh.2, ...; the
# two alternate, so each pair saw about the same load). Per figure: the median of the per-round ratios.
# Goal: CPU per request within 5%.
policy, policy_rounds = {}, []
for rnd in range(1, 1000):
    plain, pol = ("xmesh", "xmesh_policy") if rnd == 1 else (f"xmesh.{rnd}", f"xmesh_policy.{rnd}")
    if plain not in results and pol not in results:
        break
    if not (ok(plain) and ok(pol)):
        continue
    r = {}
    for c in ("1", "32"):
        a, b = get(pol, c, "cpu_us_per_req"), get(plain, c, "cpu_us_per_req")
        r["cpu_per_req_c" + c] = a / b if a is not None and b else None
    for c in ("1", "32"):
        for k in ("p50", "p99"):
            b = get(plain, c, k + "_us")
            r[k + "_c" + c] = get(pol, c, k + "_us") / b if b else None
    for c in ("1", "32"):
        r["rps_c" + c] = get(pol, c, "rps") / get(plain, c, "rps")
    policy_rounds.append(r)
if policy_rounds:
    for k in policy_rounds[0]:
        v = sorted(x[k] for x in policy_rounds if x[k] is not None)
        policy[k] = (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else None

doc = {
    "results": results,
    "vs_haproxy": ratios,
    "policy_vs_xmesh": policy,
    "policy_vs_xmesh_rounds": policy_rounds,
    "goals": {"cpu_per_req_vs_haproxy_max": 0.8, "added_p50_vs_haproxy_max": 1.0, "rss_idle_mib_max": 20,
              "policy_cpu_per_req_vs_xmesh_max": 1.05},
    "meta": {
        "seconds_per_run": secs, "workers_per_proxy": workers, "idle_conns": int(idle), "haproxy": hap_v,
        "nginx": ngx_v, "wrk": wrk_v, "kernel": kernel, "cpu": cpu, "nproc": int(nproc), "tree": tree,
        "loadavg": load, "pinning": f"wrk and the backends on CPU {cpu_cli}, the proxy on CPU {cpu_proxy}",
        "response": "xm-http GET /: a 3-byte body, HTTP/1.1 keep-alive",
        "cpu_per_req": "utime+stime of the proxy process (all threads, /proc/PID/stat) over a run / wrk's requests",
    },
}
with open(out, "w") as fh:
    json.dump(doc, fh, indent=2)


def fmt(v, spec):
    return "-" if v is None else spec.format(v)


print(f"  {'target':12} {'req/s c1':>9} {'req/s c32':>10} {'CPU/req c1':>11} {'CPU/req c32':>12} {'p50 c1':>8} "
      f"{'p99 c1':>8} {'p50 c32':>8} {'p99 c32':>8} {'RSS ' + idle + ' idle':>14}")
for name, r in results.items():
    if "error" in r:
        print(f"  {name:12} ERROR: {r['error']}")
        continue
    c1, c32 = r["c1"], r["c32"]
    rss = f"{r['rss_idle_kb'] / 1024:.1f} MiB" if "rss_idle_kb" in r else "-"
    print(f"  {name:12} {c1['rps']:>9.0f} {c32['rps']:>10.0f} {fmt(c1.get('cpu_us_per_req'), '{:.1f} us'):>11} "
          f"{fmt(c32.get('cpu_us_per_req'), '{:.1f} us'):>12} {c1['p50_us']:>6.0f}us {c1['p99_us']:>6.0f}us "
          f"{c32['p50_us']:>6.0f}us {c32['p99_us']:>6.0f}us {rss:>14}")
    errs = [f"c{c}: {r['c' + c]['socket_errors']}" for c in ("1", "32") if r["c" + c]["socket_errors"]]
    errs += [f"c{c}: {r['c' + c]['non_2xx']} non-2xx" for c in ("1", "32") if r["c" + c]["non_2xx"]]
    if errs:
        print(f"               wrk errors: {'; '.join(errs)}")
for name, r in ratios.items():
    print(f"  {name} / HAProxy: " + ", ".join(f"{k} {fmt(v, '{:.2f}x')}" for k, v in r.items()))
if len(policy_rounds) > 1:
    for i, r in enumerate(policy_rounds):
        print(f"  round {i + 1}: xmesh_policy / xmesh: cpu_per_req_c1 {fmt(r['cpu_per_req_c1'], '{:.3f}x')}, "
              f"cpu_per_req_c32 {fmt(r['cpu_per_req_c32'], '{:.3f}x')}, p50_c1 {fmt(r['p50_c1'], '{:.3f}x')}, "
              f"p50_c32 {fmt(r['p50_c32'], '{:.3f}x')}")
if policy:
    print(f"  xmesh_policy / xmesh (median of {len(policy_rounds)} round(s)): "
          + ", ".join(f"{k} {fmt(v, '{:.3f}x')}" for k, v in policy.items()))
    print("    (goal: cpu_per_req <= 1.05x; xmesh_policy = retries attempts 3 perTryTimeout 2s retryOn 5xx,"
          " connect-failure + delay/abort at 0% + outlierDetection + connectionPool)")
print(f"  (loadavg {load}; the machine may be shared: compare the rows of one run, not runs)")
print(f"wrote {out}")
