# Independent oracle for tests/scan_real.rs: which Go advisories (OSV, SEMVER ranges) affect
# the Go modules of a CycloneDX SBOM. Usage: python3 go_matches.py SBOM.json Go-all.zip
# Independent oracle: which Go advisories affect the components of a CycloneDX SBOM.
import json, re, sys, zipfile

def parse(v):
    v = v.lstrip('v')
    m = re.match(r'^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+.*)?$', v)
    if not m:
        return None
    pre = m.group(4)
    pre_key = () if pre is None else tuple((0, int(p), '') if p.isdigit() else (1, 0, p) for p in pre.split('.'))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre is None, pre_key)

def key(v):
    p = parse(v)
    return p

def affected(version, entry):
    v = key(version)
    if v is None:
        return False
    if version in entry.get('versions', []):
        return True
    for r in entry.get('ranges', []):
        if r['type'] not in ('SEMVER', 'ECOSYSTEM'):
            continue
        ev = r['events']
        state = False
        pts = []
        for e in ev:
            (k, val), = e.items()
            pts.append((k, val))
        # sort by version, introduced first at ties
        def sk(p):
            k, val = p
            if k == 'introduced' and val == '0':
                return ((-1,), 0)
            return (key(val) or (0,0,0,True,()), 0 if k == 'introduced' else 1)
        pts.sort(key=sk)
        for k, val in pts:
            if k == 'introduced':
                if val == '0' or key(val) <= v:
                    state = True
            elif k == 'fixed':
                if key(val) <= v:
                    state = False
            elif k == 'last_affected':
                if key(val) < v:
                    state = False
        if state:
            return True
    return False

sbom = json.load(open(sys.argv[1]))
z = zipfile.ZipFile(sys.argv[2])
advs = [json.loads(z.read(n)) for n in z.namelist() if n.endswith('.json')]
by_name = {}
for a in advs:
    if a.get('withdrawn'):
        continue
    for e in a.get('affected', []):
        p = e.get('package') or {}
        if p.get('ecosystem') == 'Go':
            by_name.setdefault(p['name'], []).append((a['id'], e))
comps = []
def walk(cs):
    for c in cs:
        comps.append(c)
        walk(c.get('components', []))
walk(sbom.get('components', []))
found = set()
for c in comps:
    purl = c.get('purl', '')
    if not purl.startswith('pkg:golang/'):
        continue
    body = purl[len('pkg:golang/'):]
    name, _, version = body.partition('@')
    name = name.split('?')[0]
    from urllib.parse import unquote
    name = unquote(name)
    for aid, e in by_name.get(name, []):
        if affected(version, e):
            found.add((aid, name, version))
for f in sorted(found):
    print(*f)
print(len(found), 'matches', file=sys.stderr)
