#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from ../shared/data (small real files only).

Run once before a first fuzzing run (ops/fuzz.sh --seed); the committed corpus is what
`cargo fuzz cmin` kept of these seeds and of what the fuzzers found. Inputs that
need the checks' own key (dsse, mirror_bundle, webhook) are written by
`cargo run -p stella-domain --features fuzzing --example fuzz_signed_seeds`.
"""

import hashlib
import io
import json
import pathlib
import random
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent
DATA = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "../../shared/data").resolve()
CORPUS = ROOT / "corpus"
MAX_FILE = 48 * 1024
rng = random.Random(17)


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_FILE:
        return
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def small_files(folder, pattern="*.json"):
    return sorted(p for p in folder.rglob(pattern) if p.stat().st_size <= MAX_FILE)


# SBOMs: the SPDX examples, the small CycloneDX SBOMs, the valid schema test documents.
for p in small_files(DATA / "sboms"):
    put("sbom", p.read_bytes())
for p in small_files(DATA / "cyclonedx-schema-tests"):
    if p.name.startswith("valid-"):
        put("sbom", p.read_bytes())
        if rng.random() < 0.15:
            put("canonical_json", p.read_bytes())

# Package URLs: every input and canonical form of the purl test suite.
for p in [DATA / "purl-test-suite/spec/specification-test.json", *sorted((DATA / "purl-test-suite/types").glob("*.json"))]:
    for test in json.loads(p.read_text()).get("tests", []):
        for key in ("input", "expected_output"):
            value = test.get(key)
            if isinstance(value, str):
                put("purl", value)

# OSV: a sample of records, and small collections (zip, array, single record) of them.
records = []
for name in ("Go-all.zip", "PyPI-all.zip"):
    with zipfile.ZipFile(DATA / "advisories" / name) as z:
        names = sorted(n for n in z.namelist() if z.getinfo(n).file_size <= 4096)
        for n in rng.sample(names, 60):
            records.append(z.read(n))
for r in records:
    put("osv_record", r)
for i in range(0, 30, 3):
    group = records[i:i + 3]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for j, r in enumerate(group):
            z.writestr(f"r{j}.json", r)
    put("osv_collection", buf.getvalue())
    put("osv_collection", b"[" + b",".join(group) + b"]")
    put("osv_collection", group[0])
for r in records[:10]:
    put("canonical_json", r)

# VEX: the CISA CycloneDX use cases, the CSAF documents, an OpenVEX document.
openvex = b"""{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
 "author": "Example", "timestamp": "2024-01-01T00:00:00Z", "version": 1,
 "statements": [
  {"vulnerability": {"name": "CVE-2023-1234", "aliases": ["GHSA-aaaa-bbbb-cccc"]},
   "products": [{"@id": "pkg:golang/example.com/lib@v1.2.3"}, {"@id": "pkg:npm/left-pad"}],
   "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"},
  {"vulnerability": "CVE-2023-9999", "products": ["pkg:pypi/requests@2.0.0"], "status": "fixed"}]}"""
put("vex", openvex)
for p in small_files(DATA / "vex/cyclonedx-cisa"):
    put("vex", p.read_bytes())
    put("canonical_json", p.read_bytes())
for p in small_files(DATA / "vex/csaf"):
    if "schema" not in p.name and "referenced_schema" not in str(p):
        put("vex_csaf", p.read_bytes())
        put("vex", p.read_bytes())

# Policies: the default policy, and variants of it.
policy = (ROOT / "../actors/domain/src/default_policy.toml").read_text()
put("policy", policy)
put("policy", 'name = "p"\nversion = 2\ndefault = "pass"\n')
put("policy", policy.replace("min_severity = 7.0", "min_severity = 9.0, max_severity = 10.0"))

# Versions: the first byte picks the ecosystem (Ecosystem::ALL's order), then up to
# three versions, one per line, from the comparison vectors.
ECOSYSTEM = {"npm": 0, "pypi": 1, "go": 2, "maven": 3, "cargo": 4, "nuget": 5, "gem": 6,
             "composer": 7, "debian": 8, "ubuntu": 9, "alpine": 10}
vectors = {
    "maven": "maven_version_cmp.json", "nuget": "nuget_version_cmp.json",
    "alpine": "alpine_version_cmp.json", "debian": "deb_version_python_pkg_test.json",
}
for eco, name in vectors.items():
    cases = json.loads((DATA / "version-vectors" / name).read_text())
    versions = []
    for case in cases if isinstance(cases, list) else []:
        if isinstance(case, dict):
            for value in case.values():
                if isinstance(value, str) and len(value) < 64:
                    versions.append(value)
            for value in case.get("input", []) if isinstance(case.get("input"), list) else []:
                if isinstance(value, str):
                    versions.append(value)
    for k in range(min(40, len(versions) // 3)):
        trio = rng.sample(versions, 3)
        put("version", bytes([ECOSYSTEM[eco]]) + "\n".join(trio).encode())
for eco, trio in [
    ("npm", ["1.2.3", "1.2.3-alpha.1", "v2.0.0+build.5"]),
    ("pypi", ["1.0.post1", "1.0rc1", "2!1.0.dev3+local.7"]),
    ("go", ["v1.2.3", "v0.0.0-20210101000000-abcdef123456", "v2.0.0+incompatible"]),
    ("cargo", ["0.1.0", "0.1.0-beta.2", "1.0.0+meta"]),
    ("gem", ["1.0.0", "1.0.0.pre", "1.0.a.2"]),
    ("composer", ["v1.0.0", "1.0.0-beta2", "dev-master"]),
    ("ubuntu", ["1:2.30-0ubuntu1", "2.30~rc1-1", "2.30-1build1"]),
    ("alpine", ["1.2.3-r0", "1.2.3_alpha1-r1", "1.2.3_p2"]),
]:
    put("version", bytes([ECOSYSTEM[eco]]) + "\n".join(trio).encode())

# Cron: expressions with timezones, as schedules are written.
for line in ["0 9 * * 1", "0 9 * * mon-fri\nEurope/Berlin", "*/15 * * * *", "30 */5 0 * * *",
             "0 0 1 * 5", "0 0 31 * *", "0 12 29 2 *\nAmerica/New_York", "30 2 * * *\nEurope/Berlin",
             "@weekly", "@daily\nAsia/Kolkata", "0 0 ? JAN,jul SUN", "5-55/10 1-23/2 * * 0-6/2",
             "0 0 30 2 *", "61 * * * *"]:
    put("cron", line)

# Webhooks: a signature header line, then a body; and secrets.
put("webhook", 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=\n{"type":"finding.new","data":{"id":"1"}}')
put("webhook", "v1,abc v1,def\n{}")
put("webhook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

# Canonical JSON: numbers and strings at the edges of the canonical form.
put("canonical_json", '[1e21, 1e-7, -0, 0.000001, 18446744073709551615, -9223372036854775808, 1.5e300, "\\u0000\\ud83d\\ude00"]')
put("canonical_json", '{"\\ud83d\\ude00": 1, "\\uffff": 2, "a": {"b": [true, false, null]}}')

for target in sorted(CORPUS.iterdir()):
    print(f"{target.name}: {len(list(target.iterdir()))} files")
