# SPDX-License-Identifier: Apache-2.0
# The report of `make bench` section mtls (scripts/bench.sh): reads the runs the section measured (bench/mtls
# JSON lines, the tunnels' CPU ticks, agent A's client handshakes, openssl s_time against each server), writes
# BUILD/bench/mtls.json and prints the table with the ratios against issue 15's goals.
import json
import re
import sys

out, rows_file, hs_file, hbhs_file, tck = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
suite, group, hap_v, ossl_v, kernel, cpu, nproc, tree, load, cpu_app, cpu_tun, secs = sys.argv[6:18]
slices_file = sys.argv[18]
hbone_hs = json.load(open(hbhs_file))

results = {}
for line in open(rows_file):
    f = line.rstrip("\n").split("\t")
    if f[1] == "error":
        results[f[0]] = {"error": f[2]}
        continue
    r = {}
    for kv in open(f[2]):
        k, v = kv.rstrip("\n").split("=", 1)
        r[k] = json.loads(v) if v.startswith("{") else int(v)
    # tunnel CPU (both ends) per GB streamed and per new connection; none for plaintext
    r["tunnel_cpu_ms"] = {k: r[k + "_tunnel_ticks"] * 1000.0 / tck for k in ("stream", "rr", "rr1", "conns")}
    r["tunnel_cpu_us_per_mb"] = r["tunnel_cpu_ms"]["stream"] * 1000.0 / (r["stream"]["bytes"] / 1e6)
    r["tunnel_cpu_us_per_conn"] = r["tunnel_cpu_ms"]["conns"] * 1000.0 / r["conns"]["count"]
    results[f[0]] = r


def base(name):
    return name.split(".")[0]


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def ok(name):
    return name in results and "error" not in results[name]


# Handshakes: the server's CPU per handshake from /proc (agent B, HAProxy B), the client's from getrusage.
handshakes = []
for line in open(hs_file):
    h = json.loads(line)
    r = h["run"]
    if "error" not in r:
        h["server_cpu_us_per_handshake"] = h["server_ticks"] * 1e6 / tck / r["count"]
        h["resumed_share"] = r["resumed"] / r["count"]
    handshakes.append(h)

# A resumed run where only some handshakes resumed (an OpenSSL client uses a TLS 1.3 ticket once; a server that
# issues no new ticket on a resumed connection makes every second one full): the resumed ones' cost, derived by
# taking the full ones out at the full run's rate.
for h in handshakes:
    r = h["run"]
    if h["kind"] != "resumed" or "error" in r or not 0 < r["resumed"] < r["count"]:
        continue
    full = [f for f in handshakes if f["server"] == h["server"] and f["kind"] == "full" and "error" not in f["run"]]
    if full:
        nf = r["count"] - r["resumed"]
        h["derived_resumed_only"] = {
            "server_cpu_us": (h["server_cpu_us_per_handshake"] * r["count"] - nf * full[0]["server_cpu_us_per_handshake"])
            / r["resumed"],
            "client_cpu_us": (r["client_cpu_us"] * r["count"] - nf * full[0]["run"]["client_cpu_us"]) / r["resumed"]}

print()
print("  target          Mbit/s   RR p50   RR p99  1-CPU RR p50/p99  conn p50  conn p99   conn/s  tunnel CPU/MB  tunnel CPU/conn  new TLS/conn")
for name, r in results.items():
    if "error" in r:
        print("  %-12s  ERROR: %s" % (name, r["error"]))
        continue
    tun = base(name) != "plain"
    share = ""
    if base(name) == "xmesh":
        share = "%.4f" % (r["conns_client_handshakes"] / r["conns"]["count"])
        if r["conns_server_streams"] < r["conns"]["count"]:
            share += " (only %d of %d tunnelled)" % (r["conns_server_streams"], r["conns"]["count"])
    print("  %-12s %9.0f %7.0fus %7.0fus %8.0fus %6.0fus %8.0fus %8.0fus %8.0f %12s %16s %13s" % (
        name, r["stream"]["mbps"], r["rr"]["p50_us"], r["rr"]["p99_us"], r["rr1"]["p50_us"], r["rr1"]["p99_us"],
        r["conns"]["p50_us"],
        r["conns"]["p99_us"], r["conns"]["per_sec"],
        "%.0f us" % r["tunnel_cpu_us_per_mb"] if tun else "-",
        "%.0f us" % r["tunnel_cpu_us_per_conn"] if tun else "-", share or "-"))

# Goals of issue 15, per round (plain, haproxy, xmesh of the same round).
goals = {}
rounds = sorted({name[len(base(name)):] for name in results})
for sfx in rounds:
    p, hp, x = "plain" + sfx, "haproxy" + sfx, "xmesh" + sfx
    g = {}
    if ok(x) and ok(p):
        g["throughput_vs_plain"] = results[x]["stream"]["mbps"] / results[p]["stream"]["mbps"]
    if ok(x) and ok(hp):
        g["throughput_vs_haproxy"] = results[x]["stream"]["mbps"] / results[hp]["stream"]["mbps"]
    if ok(x) and ok(hp) and ok(p):
        xa = results[x]["rr"]["p50_us"] - results[p]["rr"]["p50_us"]
        ha = results[hp]["rr"]["p50_us"] - results[p]["rr"]["p50_us"]
        g["added_rr_p50_us"] = {"xmesh": xa, "haproxy": ha}
        g["added_rr_p50_vs_haproxy"] = xa / ha if ha > 0 else None
        xa1 = results[x]["rr1"]["p50_us"] - results[p]["rr1"]["p50_us"]
        ha1 = results[hp]["rr1"]["p50_us"] - results[p]["rr1"]["p50_us"]
        g["added_rr_p50_us_one_cpu"] = {"xmesh": xa1, "haproxy": ha1}
        g["added_rr_p50_one_cpu_vs_haproxy"] = xa1 / ha1 if ha1 > 0 else None
    if ok(x) and results[x]["conns_server_streams"] >= results[x]["conns"]["count"]:
        # every new connection was a stream on node B; those that needed no client handshake on node A
        c = results[x]["conns"]["count"]
        g["new_conns_without_handshake"] = 1 - results[x]["conns_client_handshakes"] / c
    goals[sfx or "1"] = g

print()
for sfx, g in goals.items():
    want = [("throughput_vs_plain", ">= 0.6"), ("throughput_vs_haproxy", ">= 1.2"),
            ("added_rr_p50_vs_haproxy", "<= 1.0"), ("new_conns_without_handshake", ">= 0.95")]
    parts = []
    for k, w in want:
        v = g.get(k)
        if v is None:
            parts.append("%s n/a (goal %s)" % (k, w))
            continue
        met = v >= float(w[3:]) if w.startswith(">=") else v <= float(w[3:])
        parts.append("%s %.2f%s (goal %s: %s)" % (k, v, "" if k.startswith("new") else "x", w,
                                                   "met" if met else "NOT met"))
    print("  round %s: %s" % (sfx.lstrip(".") or "1", "; ".join(parts)))
    if "added_rr_p50_us" in g:
        print("           added RR p50 over plaintext: xmesh %.0f us, HAProxy %.0f us; with the tunnel on the"
              " application's CPU: xmesh %.0f us, HAProxy %.0f us (%.2fx)" % (
                  g["added_rr_p50_us"]["xmesh"], g["added_rr_p50_us"]["haproxy"],
                  g["added_rr_p50_us_one_cpu"]["xmesh"], g["added_rr_p50_us_one_cpu"]["haproxy"],
                  g["added_rr_p50_one_cpu_vs_haproxy"] or 0))

# Per request/response exchange, per tunnel: its processes' CPU, their context switches, and the TCP segments
# all the section's namespaces sent. Equal switches and segments mean the two tunnels do the same steps; then
# the latency difference is the work per step (or noise).
for name, r in results.items():
    if base(name) != "plain" and "error" not in r and "rr_tunnel_ctxsw" in r:
        print("  %s per exchange: %s" % (name, "; ".join(
            "%s %.0f us CPU, %.2f context switches, %.2f TCP segments" % (
                "two CPUs" if k == "rr" else "one CPU", r["tunnel_cpu_ms"][k] * 1000.0 / r[k]["count"],
                r[k + "_tunnel_ctxsw"] / r[k]["count"], r[k + "_tcp_segments"] / r[k]["count"])
            for k in ("rr", "rr1"))))

# The same-node hops through the sockmap (sk_msg redirected bytes on each node during the stream run): node A's
# is the client pod <-> agent A hop, node B's the agent B <-> server pod hop; 0 means that hop took TCP/IP.
for name, r in results.items():
    if base(name) == "xmesh" and "error" not in r and "stream_sockmap_bytes_a" in r:
        print("  %s stream: %.0f MB redirected by node A's sockmap, %.0f MB by node B's (%.0f MB streamed)" % (
            name, r["stream_sockmap_bytes_a"] / 1e6, r["stream_sockmap_bytes_b"] / 1e6, r["stream"]["bytes"] / 1e6))

if len(goals) > 1:  # the median over rounds of each ratio (each round's targets ran back to back)
    med = {}
    for k in ("throughput_vs_plain", "throughput_vs_haproxy", "added_rr_p50_vs_haproxy",
              "added_rr_p50_one_cpu_vs_haproxy", "new_conns_without_handshake"):
        v = sorted(g[k] for g in goals.values() if g.get(k) is not None)
        if v:
            med[k] = median(v)
    goals["median"] = med
    print("  median over %d rounds: %s" % (len(goals) - 1, "; ".join("%s %.2f" % kv for kv in med.items())))



# Request/response in interleaved slices (scripts/bench.sh mtls_rr_slices): per slice the added p50 of each
# tunnel over plaintext's p50 of the same slice; the ratio per slice, its median, and the ratio of the medians.
slices = {}
for line in open(slices_file):
    j = json.loads(line)
    slices.setdefault(j["slice"], {})[j["target"]] = j["run"]
rr_slices = None
ratios, added = [], {"xmesh": [], "haproxy": []}
for i, sl in sorted(slices.items()):
    if all(t in sl and "error" not in sl[t] for t in ("plain", "haproxy", "xmesh")):
        xa = sl["xmesh"]["p50_us"] - sl["plain"]["p50_us"]
        ha = sl["haproxy"]["p50_us"] - sl["plain"]["p50_us"]
        added["xmesh"].append(xa)
        added["haproxy"].append(ha)
        if ha > 0:
            ratios.append(xa / ha)
if ratios:
    rr_slices = {"slices": len(ratios), "exchanges_per_slice": slices[min(slices)]["plain"].get("count"),
                 "ratio_per_slice": ratios, "added_rr_p50_vs_haproxy_median_of_slices": median(ratios),
                 "added_rr_p50_us_median": {k: median(v) for k, v in added.items()},
                 "slices_at_or_below_1": sum(r <= 1.0 for r in ratios)}
    rr_slices["added_rr_p50_vs_haproxy_of_medians"] = (rr_slices["added_rr_p50_us_median"]["xmesh"] /
                                                       rr_slices["added_rr_p50_us_median"]["haproxy"])
    print("  interleaved request/response, %d slices of %s exchanges: added RR p50 over plaintext, medians xmesh"
          " %.0f us, HAProxy %.0f us: %.2fx (goal <= 1.0: %s); per slice %s (median %.2fx, %d of %d <= 1.0)" % (
              len(ratios), rr_slices["exchanges_per_slice"], rr_slices["added_rr_p50_us_median"]["xmesh"],
              rr_slices["added_rr_p50_us_median"]["haproxy"], rr_slices["added_rr_p50_vs_haproxy_of_medians"],
              "met" if rr_slices["added_rr_p50_vs_haproxy_of_medians"] <= 1.0 else "NOT met",
              ", ".join("%.2f" % r for r in ratios), rr_slices["added_rr_p50_vs_haproxy_median_of_slices"],
              rr_slices["slices_at_or_below_1"], len(ratios)))
elif slices:
    print("  interleaved request/response: no complete slice (%s)" % json.dumps(slices)[:300])

print()
print("  handshakes from node A   count  resumed  server CPU/handshake  client CPU/handshake")
for h in handshakes:
    r = h["run"]
    if "error" in r:
        print("  %-8s %-8s ERROR: %s" % (h["server"], h["kind"], r["error"]))
        continue
    print("  %-8s %-8s %13d %8d %18.0f us %18.0f us%s" % (
        h["server"], h["kind"], r["count"], r["resumed"], h["server_cpu_us_per_handshake"], r["client_cpu_us"],
        "   (agent B: %d resumptions, %d tickets rejected)" % (h["agent_b_resumptions"], h["agent_b_tickets_rejected"])
        if h["server"] == "xmesh" else ""))
    if "derived_resumed_only" in h:
        d = h["derived_resumed_only"]
        print("  %-8s %-8s %13s %8s %18.0f us %18.0f us   (the %d resumed ones alone, derived)" % (
            "", "", "", "", d["server_cpu_us"], d["client_cpu_us"], r["resumed"]))

if hbone_hs:
    f, r = hbone_hs["full"], hbone_hs["resumed"]
    print("  bench/hbone_handshake (the agent's tunnel code on loopback, %d each): full client %.0f us + server"
          " %.0f us, resumed client %.0f us + server %.0f us (resumed/full %.2f)" % (
              hbone_hs["n"], f["client_us"], f["server_us"], r["client_us"], r["server_us"],
              (r["client_us"] + r["server_us"]) / (f["client_us"] + f["server_us"])))

json.dump({"targets": results, "goals": goals, "rr_interleaved": rr_slices, "handshakes": handshakes,
           "hbone_handshake": hbone_hs,
           "tls": {"ciphersuite": suite, "group": group},
           "env": {"haproxy": hap_v, "openssl": ossl_v, "kernel": kernel, "cpu": cpu, "nproc": int(nproc),
                   "tree": tree, "loadavg": load, "cpu_app": int(cpu_app), "cpu_tunnel": int(cpu_tun),
                   "stream_secs": float(secs)}},
          open(out, "w"), indent=1)
print("\n  %s" % out)
