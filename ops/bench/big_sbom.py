#!/usr/bin/env python3
"""Writes the largest CycloneDX 1.5 JSON SBOM that fits a byte budget (default: just
under `api.max_body_bytes`, 50 MiB) with a fixed number of components (default 200,000),
for the memory benchmark (`ops/bench/memory.sh`, docs/BENCHMARKS.md "Memory").

Deterministic (a seeded RNG, no clock, no network): the same arguments give the same
bytes, so runs before and after a change scan the same document.

The components look like a large monorepo's: npm packages (no npm advisories are in the
shared data, so they are matched but find nothing), Go modules under made-up owners (no
advisories either) and a share of Go modules that real advisories in Go-all.zip name, at
pseudo-versions older than any fix, so findings exist (several per such component). Each
component carries a licence, and a description sized so the document ends as
close under the budget as the JSON allows.

Usage: big_sbom.py OUT.json [--components N] [--max-bytes B] [--vulnerable-share F]
       [--advisories Go-all.zip]
"""

import argparse
import hashlib
import io
import json
import random
import zipfile

SYLLABLES = [
    "ac", "al", "an", "ar", "ba", "be", "bo", "ca", "ce", "co", "da", "de", "di", "do",
    "el", "en", "er", "fa", "fi", "fo", "ga", "ge", "go", "ha", "he", "hi", "in", "is",
    "ja", "jo", "ka", "ke", "ko", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na",
    "ne", "ni", "no", "or", "pa", "pe", "pi", "po", "qu", "ra", "re", "ri", "ro", "sa",
    "se", "si", "so", "ta", "te", "ti", "to", "un", "va", "ve", "vi", "wa", "xe", "yo",
    "za", "ze",
]
SUFFIXES = ["", "-js", "-core", "-utils", "-cli", "-parser", "-loader", "-plugin", "-sdk"]
LICENSES = ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "MPL-2.0", "BSD-2-Clause"]
HOSTS = ["github.com", "gitlab.com", "bitbucket.org"]


def word(rng, parts):
    return "".join(rng.choice(SYLLABLES) for _ in range(parts))


def advisory_modules(path):
    """Go modules that non-withdrawn advisories name with a range starting at 0."""
    modules = set()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            record = json.loads(archive.read(name))
            if record.get("withdrawn"):
                continue
            for affected in record.get("affected", []):
                module = affected.get("package", {}).get("name", "")
                if not module or module == "stdlib" or module == "toolchain":
                    continue
                for r in affected.get("ranges", []):
                    events = r.get("events", [])
                    if r.get("type") == "SEMVER" and events and events[0].get("introduced") == "0":
                        modules.add(module)
    return sorted(modules)


def pseudo_version(rng, i):
    # v0.0.0-<timestamp>-<commit>: sorts below every tagged release, so "introduced 0"
    # ranges contain it.
    stamp = "2019%02d%02d%02d%02d%02d" % (
        1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60)
    return "v0.0.0-%s-%012x" % (stamp, rng.getrandbits(48))


def component(rng, i, vulnerable, modules):
    kind = rng.random()
    if i < vulnerable:
        module = modules[i % len(modules)]
        version = pseudo_version(rng, i)
        purl = "pkg:golang/%s@%s" % (module, version)
        name = module
    elif kind < 0.55:
        scoped = rng.random() < 0.3
        base = word(rng, 3) + rng.choice(SUFFIXES)
        version = "%d.%d.%d" % (rng.randrange(0, 12), rng.randrange(0, 30), rng.randrange(0, 40))
        if scoped:
            scope = word(rng, 2)
            name = "@%s/%s" % (scope, base)
            purl = "pkg:npm/%%40%s/%s@%s" % (scope, base, version)
        else:
            name = base
            purl = "pkg:npm/%s@%s" % (base, version)
    else:
        module = "%s/%s/%s" % (rng.choice(HOSTS), word(rng, 2), word(rng, 3))
        version = "v%d.%d.%d" % (rng.randrange(0, 5), rng.randrange(0, 30), rng.randrange(0, 20))
        name = module
        purl = "pkg:golang/%s@%s" % (module, version)
    return {
        "type": "library",
        "bom-ref": purl,
        "name": name,
        "version": version,
        "purl": purl,
        "licenses": [{"license": {"id": rng.choice(LICENSES)}}],
    }


def document(components, pad, extra=0):
    """The SBOM with descriptions of `pad` characters, one more for the first `extra`."""
    text = " ".join(["padding"] * 64)
    text = text * (2 + pad // len(text))
    for i, c in enumerate(components):
        c["description"] = text[: pad + (1 if i < extra else 0)]
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:5f0e1b2c-0000-4000-8000-000000200000",
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": "monorepo",
                "name": "example-monorepo",
                "version": "1.0.0",
            }
        },
        "components": components,
        "dependencies": [{"ref": "monorepo", "dependsOn": []}],
    }
    out = io.StringIO()
    json.dump(bom, out, separators=(",", ":"))
    return out.getvalue().encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--components", type=int, default=200_000)
    parser.add_argument("--max-bytes", type=int, default=50 * 1024 * 1024)
    parser.add_argument("--vulnerable-share", type=float, default=0.1)
    parser.add_argument("--advisories", default="../shared/data/advisories/Go-all.zip")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()

    modules = advisory_modules(args.advisories)
    vulnerable = int(args.components * args.vulnerable_share)
    rng = random.Random(args.seed)
    components, seen = [], set()
    while len(components) < args.components:
        c = component(rng, len(components), vulnerable, modules)
        # A real SBOM lists each package once (and bom-refs must be unique).
        if c["purl"] not in seen:
            seen.add(c["purl"])
            components.append(c)
    # Grow the descriptions until the next step would pass the budget, then lengthen the
    # first few by one character each (one byte each: plain ASCII) to end just under it.
    low, high = 0, args.max_bytes // max(1, args.components)
    if len(document(components, low)) > args.max_bytes:
        raise SystemExit("the components alone are over --max-bytes")
    while low < high:
        mid = (low + high + 1) // 2
        if len(document(components, mid)) <= args.max_bytes:
            low = mid
        else:
            high = mid - 1
    extra = args.max_bytes - len(document(components, low))
    data = document(components, low, min(extra, args.components))
    with open(args.out, "wb") as f:
        f.write(data)
    print(json.dumps({
        "out": args.out,
        "bytes": len(data),
        "components": args.components,
        "vulnerable_components": vulnerable,
        "advisory_modules": len(modules),
        "description_chars": low,
        "longer_descriptions": min(extra, args.components),
        "sha256": hashlib.sha256(data).hexdigest(),
    }))


if __name__ == "__main__":
    main()
