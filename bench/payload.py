#!/usr/bin/env python3
"""Generate a benchmark payload shaped like agent-payload/ (about 150 MB), deterministically.

Usage: bench/payload.py DIR [--seed N] [--agent-mb MB] [--scripts-mb MB]

DIR/agent/ gets 40 jar-like files of seeded random bytes (incompressible, like real jars;
about 144 MB in all, sizes spread from small libraries to a few large ones), `_run.sh`,
conf/, scripts/, certs/ and a few UI text assets. DIR/scripts/ gets the tree that
cloud-scripts.tgz unpacks at `/`: etc/, opt/cloud/bin/ (executable scripts),
opt/cloud/templates/, root/, var/www/html/, a few MB of seeded pseudo-shell text that
compresses about as well as real scripts. DIR/patch-sysvms.sh is copied from
agent-payload/ so every layout can be built.

The same seed gives the same bytes, names, sizes and modes; every mtime is set to one
fixed time, so `systemvm build` output does not depend on when the payload was made.
DIR must not exist or be empty. Memory stays at about one 1 MiB buffer.
"""

import argparse
import os
import random
import shutil
import sys

MTIME = 1_600_000_000  # 2020-09-13, fixed so builds compare
CHUNK = 1 << 20

JARS = [
    "cloud-agent", "cloud-api", "cloud-core", "cloud-engine-api", "cloud-engine-schema",
    "cloud-framework-ca", "cloud-framework-config", "cloud-framework-db",
    "cloud-framework-events", "cloud-framework-jobs", "cloud-framework-managed-context",
    "cloud-framework-security", "cloud-framework-spring-module", "cloud-plugin-hypervisor-kvm",
    "cloud-secondary-storage", "cloud-server", "cloud-utils", "cloud-console-proxy",
    "cloud-systemvm", "cloud-plugin-storage-image-s3", "aws-java-sdk-s3", "bcprov-jdk15on",
    "commons-codec", "commons-collections", "commons-httpclient", "commons-io",
    "commons-lang3", "commons-logging", "gson", "guava", "jackson-databind", "javax.inject",
    "jetty-server", "joda-time", "log4j", "netty-all", "slf4j-api", "spring-context",
    "spring-core", "xercesImpl",
]

WORDS = (
    "if then else fi for do done while case esac local return echo printf set -e -u -o "
    "pipefail grep sed awk cut sort uniq tr cat cp mv rm mkdir chmod chown ln test [ ] "
    "[[ ]] && || $1 $2 $@ \"$IP\" \"$DEV\" /etc/network/interfaces /var/log/cloud.log "
    "/opt/cloud/bin /var/cache/cloud iptables -A -I -D -j ACCEPT DROP ip route addr link "
    "dev eth0 eth1 eth2 systemctl restart reload dnsmasq haproxy apache2 keepalived "
    "conntrackd logger -t cloud python3 json load dump config get_value interface netmask "
    "gateway router vpn ipsec strongswan password userdata metadata dhcp dns guest public "
    "control link-local 169.254.0.1 255.255.0.0 0.0.0.0/0 exit 0 1 2"
).split()


def random_file(path, size, rng):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, CHUNK)
            f.write(rng.randbytes(n))
            left -= n


def text_file(path, size, rng, shebang="#!/bin/bash"):
    lines = [shebang, "# Licensed to the Apache Software Foundation (ASF)", ""]
    total = sum(len(line) + 1 for line in lines)
    while total < size:
        indent = "    " * rng.randrange(3)
        line = indent + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 12)))
        lines.append(line)
        total += len(line) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def jar_sizes(total, count, rng):
    """`count` sizes summing to `total`: a few big jars, many small ones."""
    weights = [rng.lognormvariate(0.0, 1.0) for _ in range(count)]
    scale = total / sum(weights)
    sizes = [max(4096, int(w * scale)) for w in weights]
    sizes[0] += total - sum(sizes)  # exact total
    return sizes


def write(path, size, rng, mode, kind):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "bin":
        random_file(path, size, rng)
    elif kind == "py":
        text_file(path, size, rng, "#!/usr/bin/env python3")
    elif kind == "conf":
        text_file(path, size, rng, "# generated configuration")
    else:
        text_file(path, size, rng)
    os.chmod(path, mode)


def generate(root, seed, agent_mb, scripts_mb):
    rng = random.Random(seed)
    files = []  # (relative path, size, mode, kind)
    for name, size in zip(JARS, jar_sizes(agent_mb * 1_000_000, len(JARS), rng)):
        files.append((f"agent/{name}-4.16.0.0.jar", size, 0o644, "bin"))
    files += [
        ("agent/_run.sh", 3_000, 0o755, "sh"),
        ("agent/conf/agent.properties", 6_000, 0o644, "conf"),
        ("agent/conf/consoleproxy.properties", 2_000, 0o644, "conf"),
        ("agent/conf/log4j-cloud.xml", 5_000, 0o644, "conf"),
        ("agent/conf/environment.properties", 500, 0o644, "conf"),
        ("agent/certs/README", 400, 0o644, "conf"),
        ("agent/certs/realhostip.keystore", 4_000, 0o644, "bin"),
    ]
    for i in range(12):
        files.append((f"agent/scripts/storage/secondary/script{i:02}.sh", 4_000, 0o755, "sh"))
    for i in range(20):
        files.append((f"agent/js/ui{i:02}.js", 20_000, 0o644, "conf"))
        files.append((f"agent/css/style{i:02}.css", 8_000, 0o644, "conf"))
    for i in range(10):
        files.append((f"agent/images/icon{i:02}.png", 6_000, 0o644, "bin"))

    # scripts/: about scripts_mb of text, most of it in opt/cloud/bin.
    budget = scripts_mb * 1_000_000
    for i in range(140):
        kind = "py" if i % 3 == 0 else "sh"
        ext = ".py" if kind == "py" else ".sh"
        files.append((f"scripts/opt/cloud/bin/cmd{i:03}{ext}", budget * 7 // 10 // 140, 0o755,
                      kind))
    for i in range(30):
        files.append((f"scripts/opt/cloud/bin/cs/module{i:02}.py", budget // 10 // 30, 0o644,
                      "py"))
    for i in range(25):
        files.append((f"scripts/opt/cloud/templates/t{i:02}.templ", budget // 20 // 25, 0o644,
                      "conf"))
    for i in range(40):
        files.append((f"scripts/etc/cloud/conf{i:02}.conf", budget // 20 // 40, 0o644, "conf"))
    files += [
        ("scripts/etc/logrotate.d/cloud", 400, 0o644, "conf"),
        ("scripts/etc/profile.d/systemvm.sh", 300, 0o644, "sh"),
        ("scripts/etc/systemd/system/cloud.service", 500, 0o644, "conf"),
        ("scripts/etc/systemd/system/systemvm-patch.service", 500, 0o644, "conf"),
        ("scripts/root/.bashrc", 1_000, 0o644, "sh"),
        ("scripts/root/clearUsageRules.sh", 2_000, 0o755, "sh"),
    ]
    for i in range(20):
        files.append((f"scripts/var/www/html/page{i:02}.html", budget // 20 // 20, 0o644,
                      "conf"))
    for rel, size, mode, kind in files:
        write(os.path.join(root, rel), size, rng, mode, kind)

    here = os.path.dirname(os.path.abspath(__file__))
    patch = os.path.join(here, "..", "agent-payload", "patch-sysvms.sh")
    if os.path.exists(patch):
        shutil.copyfile(patch, os.path.join(root, "patch-sysvms.sh"))
        os.chmod(os.path.join(root, "patch-sysvms.sh"), 0o755)

    total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            total += os.path.getsize(p)
            os.utime(p, (MTIME, MTIME))
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (MTIME, MTIME))
    return len(files), total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--seed", type=int, default=4160)
    parser.add_argument("--agent-mb", type=int, default=144)
    parser.add_argument("--scripts-mb", type=int, default=5)
    args = parser.parse_args()
    if os.path.exists(args.dir) and os.listdir(args.dir):
        sys.exit(f"payload.py: {args.dir} exists and is not empty")
    os.makedirs(args.dir, exist_ok=True)
    count, total = generate(args.dir, args.seed, args.agent_mb, args.scripts_mb)
    print(f"payload: {args.dir}: {count} files, {total / 1e6:.1f} MB (seed {args.seed})")


if __name__ == "__main__":
    main()
