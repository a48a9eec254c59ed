#!/usr/bin/env python3
# test/check-release.py: what a release promises, checked before packaging.
#
# Copyright (c) 2026, conngov developers
#
# - META.json is valid PGXN metadata (meta-spec 1.0.0, test/META.schema.json)
#   and says what conngov is: license postgresql, PostgreSQL 15 or later,
#   provides conngov with a file and a docfile that exist;
# - one version everywhere: META.json (and its provides), debian/changelog,
#   the top entry of CHANGELOG.md and conngov.control's default_version
#   ('1.1' is 1.1.0); provides.file is the script that installs that
#   version: its own conngov--X.Y.sql, or the newest full script of an
#   older version that the upgrade scripts lead from;
# - LICENSE is the PostgreSQL License, debian/copyright says the same, and
#   every copyright line in the tree names LICENSE's holder.
#
# While the extension version of the package has not landed yet (no script
# installs it), a default_version behind it is reported, not failed: once
# one does, the check is strict.
#
# Usage: python3 test/check-release.py [TREE]; exits 1 on any failure.

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "..").resolve()
errors = []
notes = []


def fail(msg):
    errors.append(msg)


def semver(v):
    """'1.1' -> '1.1.0': an extension version as PGXN spells it."""
    parts = v.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def extversion(v):
    """'1.1.0' -> '1.1': the extension version of a package version."""
    return v[:-2] if re.fullmatch(r"\d+\.\d+\.0", v) else v


def read(rel):
    return (root / rel).read_text(encoding="utf-8")


# ---- META.json against the PGXN schema, then conngov's pins ----
meta = json.loads(read("META.json"))
schema = json.loads(read("test/META.schema.json"))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
for e in sorted(validator.iter_errors(meta), key=lambda e: list(e.absolute_path)):
    where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
    fail(f"META.json {where}: {e.message}")
if errors:
    print("\n".join(f"check-release: {m}" for m in errors), file=sys.stderr)
    sys.exit(1)

if meta["name"] != "conngov":
    fail(f'META.json name is "{meta["name"]}", not "conngov"')
if meta["license"] != "postgresql":
    fail(f'META.json license is {meta["license"]!r}, not "postgresql" (LICENSE)')
pg = meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL")
if pg != "15.0.0":
    fail(f"META.json prereqs.runtime.requires.PostgreSQL is {pg!r}, not 15.0.0")
prov = meta["provides"].get("conngov")
if prov is None:
    fail("META.json provides no conngov")
    prov = {"file": "", "version": meta["version"]}
for key in ("file", "docfile"):
    if key in prov and not (root / prov[key]).is_file():
        notes.append(f"META.json provides.conngov.{key} {prov[key]} does not exist")

# ---- one version everywhere ----
package = meta["version"]
m = re.search(r"^default_version\s*=\s*'([^']+)'", read("conngov.control"), re.M)
control = m.group(1) if m else "(none)"
m = re.match(r"conngov \(([^)]+)\)", read("debian/changelog"))
debian = m.group(1) if m else "(unreadable)"
top = next((l for l in read("CHANGELOG.md").splitlines() if l.startswith("## ")), "")
m = re.match(r"## (\d+(?:\.\d+)+)\b", top)
changelog = m.group(1) if m else f"(top entry {top!r} names no version)"

versions = {
    "META.json provides.conngov.version": prov["version"],
    "debian/changelog": debian,
    "CHANGELOG.md top entry": changelog,
}
for where, v in versions.items():
    if semver(v) != package:
        fail(f"{where} says {v}, META.json version says {package}")

def install_script(ext):
    """The script CREATE EXTENSION starts from to install version ext: its
    own conngov--ext.sql, or else the newest full script of an older
    version from which upgrade scripts reach ext (as pg_stat_statements
    ships one base script and its updates); None when there is none."""
    if (root / f"conngov--{ext}.sql").exists():
        return f"conngov--{ext}.sql"
    key = lambda v: tuple(int(x) for x in v.split("."))
    full = sorted((m.group(1) for f in root.glob("conngov--*.sql")
                   if (m := re.fullmatch(r"conngov--(\d+\.\d+)\.sql", f.name))),
                  key=key, reverse=True)
    steps = {m.group(1): m.group(2) for f in root.glob("conngov--*--*.sql")
             if (m := re.fullmatch(r"conngov--(\d+\.\d+)--(\d+\.\d+)\.sql", f.name))}
    for base in (v for v in full if key(v) < key(ext)):
        v = base
        while v in steps and v != ext:
            v = steps[v]
        if v == ext:
            return f"conngov--{base}.sql"
    return None


script = install_script(extversion(package))
pending = semver(control) != package and script is None
if semver(control) != package and not pending:
    fail(f"conngov.control default_version is {control}, the package is {package} ({script} installs it)")
elif pending:
    print(f"check-release: NOTE: conngov.control default_version is {control} and no script "
          f"installs {extversion(package)} yet: extension version {extversion(package)} has not landed; "
          f"the package is labelled {package} but installs {control}")
if script is not None and prov.get("file") != script:
    fail(f"META.json provides.conngov.file is {prov.get('file')!r}, not {script}, the script that installs {extversion(package)}")
for n in notes:
    if pending and n.endswith("does not exist"):
        continue
    fail(n)

# ---- license and copyright lines ----
lic = read("LICENSE")
m = re.search(r"^Copyright \(c\) (\d{4}(?:-\d{4})?), (.+)$", lic, re.M)
holder = m.group(2) if m else None
if not holder:
    fail("LICENSE has no line 'Copyright (c) YEAR, HOLDER'")
if "Permission to use, copy, modify, and distribute this software" not in lic:
    fail("LICENSE is not the PostgreSQL License text")
dep5 = read("debian/copyright")
if "License: PostgreSQL" not in dep5 or not re.search(
        rf"^Copyright: \d{{4}}(-\d{{4}})?, {re.escape(holder or '')}$", dep5, re.M):
    fail(f"debian/copyright does not give the PostgreSQL License and holder {holder!r}")
readme = read("README.md")
if "PostgreSQL License" not in readme or "LICENSE" not in readme:
    fail("README.md does not say the license (PostgreSQL License, file LICENSE)")

try:
    files = subprocess.run(["git", "-C", str(root), "ls-files"], check=True,
                           capture_output=True, text=True).stdout.split("\n")
except (OSError, subprocess.CalledProcessError):
    files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
             and not re.match(r"(\.git|build-\d+|tmp_\w+|debian/postgresql-)", str(p.relative_to(root)))]
header = re.compile(r"^[^\w\n]*Copyright\b.*", re.M)
good = re.compile(rf"Copyright \(c\) \d{{4}}(-\d{{4}})?, {re.escape(holder or '')}$")
for f in sorted(x for x in files if x and x not in ("LICENSE", "debian/copyright")):
    try:
        text = (root / f).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        continue
    lines = header.findall(text)
    for line in lines:
        if not good.search(line):
            fail(f"{f}: copyright line does not name LICENSE's holder: {line.strip()}")
    if re.match(r"src/.*\.[ch]$", f) and not lines:
        fail(f"{f}: no copyright line")

if errors:
    print("\n".join(f"check-release: {m}" for m in errors), file=sys.stderr)
    sys.exit(1)
print(f"check-release: ok: META.json valid (PGXN meta-spec 1.0.0), version {package} "
      f"(debian/changelog {debian}, CHANGELOG.md {changelog}, conngov.control {control}), "
      f"PostgreSQL License held by {holder}")
