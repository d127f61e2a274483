#!/usr/bin/env python3
"""
check_meta: META.json against the PGXN Meta Spec v1.0.0 (https://pgxn.org/spec/),
and the release version as META.json, dalp_fdw.control and debian/changelog
state it.

  check_meta.py [--meta F] [--control F] [--changelog F]

Defaults are the repository's files. Checked:
  - META.json: the spec's mandatory fields (name, abstract, version,
    maintainer, license, provides, meta-spec) and the types and formats of
    every field it defines (semantic versions, terms, tags, licenses, prereq
    phases and relations, URLs); any other key must start with "x_".
  - the distribution is the extension: META's name and its one "provides"
    entry are the control file's name, the file it names is the install
    script's first part (extension/<name>.sql, from which the Makefile
    builds the script), it and the docfile exist in the repository;
  - one version: META's version = its provides version = the control file's
    default_version as a semantic version ('1.0' is 1.0.0) = the upstream
    part of the newest debian/changelog entry (1.0.0-1 is 1.0.0).
Prints every problem and exits 1 if there is one. Python 3 standard library.
"""
import argparse
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# SemVer 1.0.0, which the spec requires: MAJOR.MINOR.PATCH, an optional
# "-prerelease" of ASCII letters, digits and hyphens starting with a letter.
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[A-Za-z][0-9A-Za-z-]*)?$")
LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd",
    "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1",
    "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5",
    "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
    "restricted", "unrestricted", "unknown",
}
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}
RELEASE_STATUSES = {"stable", "testing", "unstable"}


class Checker:
    def __init__(self):
        self.errors = []

    def error(self, path, msg):
        self.errors.append("%s: %s" % (path, msg))

    # Value checks: each takes the field's path (for the message) and value.
    def string(self, path, v):
        if not isinstance(v, str) or v == "":
            self.error(path, "must be a non-empty string")
            return False
        return True

    def lc_string(self, path, v):
        if self.string(path, v) and v != v.lower():
            self.error(path, "must be lowercase")

    def _string_class(self, path, v, what, bad, minlen, maxlen=None):
        if not self.string(path, v):
            return
        if re.search(bad, v):
            self.error(path, "%r is not a valid %s" % (v, what))
        elif len(v) < minlen or (maxlen and len(v) > maxlen):
            self.error(path, "a %s must have %d to %s characters" % (what, minlen, maxlen or "any"))

    def term(self, path, v):
        # at least two characters; no space, control character, / or \
        self._string_class(path, v, "term", r"[\s\x00-\x1f\x7f/\\]", 2)

    def tag(self, path, v):
        self._string_class(path, v, "tag", r"[\x00-\x1f\x7f/\\]", 1, 256)

    def version(self, path, v):
        if not isinstance(v, str) or not SEMVER.match(v):
            self.error(path, "%r is not a semantic version (MAJOR.MINOR.PATCH)" % (v,))

    def exversion(self, path, v):
        # "0" (any version), or a comma-separated list of [op] SEMVER
        if not isinstance(v, str) or v.strip() == "":
            self.error(path, "must be a version range string such as \"15.0.0\" or \">= 15.0.0, < 18.0.0\"")
            return
        for part in re.split(r",\s*", v):
            if part == "0":
                continue
            m = re.match(r"^(==|!=|<=|>=|<|>)?\s*(\S+)$", part)
            if not m or not SEMVER.match(m.group(2)):
                self.error(path, "%r is not a valid version range" % part)

    def url(self, path, v):
        if not self.string(path, v):
            return
        m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(//([^/?#]*))?", v)
        if not m or not m.group(3):
            self.error(path, "%r is not a URL with a scheme and a host" % v)

    def email(self, path, v):
        if self.string(path, v) and "@" not in v:
            self.error(path, "%r is not an email address" % v)

    def custom_key(self, path, key):
        if not key.lower().startswith("x_"):
            self.error(path, "unknown key %r (custom keys must begin with \"x_\")" % key)

    # Structure checks.
    def mapping(self, path, v, fields, mandatory=(), other=None):
        """fields: key -> check(path, value); other: check for any other key
        (its name checked by the caller's rule), None = custom x_ keys only."""
        if not isinstance(v, dict):
            self.error(path, "must be an object")
            return
        for key in mandatory:
            if key not in v:
                self.error(path, "the mandatory field %r is missing" % key)
        for key, value in v.items():
            sub = "%s/%s" % (path, key)
            if key in fields:
                fields[key](sub, value)
            elif other:
                other(sub, key, value)
            else:
                self.custom_key(sub, key)

    def string_or_list(self, path, v, check, nonempty=False):
        """The spec lets a list of one be written as the bare value."""
        if isinstance(v, list):
            if nonempty and not v:
                self.error(path, "must not be an empty list")
            for i, item in enumerate(v):
                check("%s[%d]" % (path, i), item)
        else:
            check(path, v)

    def license(self, path, v):
        def known(p, name):
            if name not in LICENSES:
                self.error(p, "%r is not a license name of the spec (e.g. \"postgresql\")" % (name,))
        if isinstance(v, dict):
            if not v:
                self.error(path, "must not be empty")
            for name, link in v.items():
                self.url("%s/%s" % (path, name), link)
        else:
            self.string_or_list(path, v, known, nonempty=True)

    def provides(self, path, v):
        if isinstance(v, dict) and not v:
            self.error(path, "must name at least one extension")

        def extension(sub, key, value):
            self.term(sub, key)
            self.mapping(sub, value, {
                "file": self.string, "version": self.version,
                "abstract": self.string, "docfile": self.string,
            }, mandatory=("file", "version"))
        self.mapping(path, v, {}, other=extension)

    def prereqs(self, path, v):
        def phase(p, name, rels):
            if name not in PHASES and not name.lower().startswith("x_"):
                self.error(p, "unknown phase %r (one of %s)" % (name, ", ".join(sorted(PHASES))))
            self.mapping(p, rels, {}, other=relation)

        def relation(p, name, deps):
            if name not in RELATIONS and not name.lower().startswith("x_"):
                self.error(p, "unknown relation %r (one of %s)" % (name, ", ".join(sorted(RELATIONS))))
            self.mapping(p, deps, {}, other=lambda q, dep, rng: (self.term(q, dep), self.exversion(q, rng)))
        self.mapping(path, v, {}, other=phase)

    def meta(self, m):
        self.mapping("", m, {
            "name": self.term,
            "abstract": self.string,
            "description": self.string,
            "version": self.version,
            "maintainer": lambda p, v: self.string_or_list(p, v, self.string, nonempty=True),
            "license": self.license,
            "provides": self.provides,
            "prereqs": self.prereqs,
            "release_status": lambda p, v: v in RELEASE_STATUSES or self.error(
                p, "%r is not one of %s" % (v, ", ".join(sorted(RELEASE_STATUSES)))),
            "generated_by": self.string,
            "tags": lambda p, v: self.string_or_list(p, v, self.tag),
            "no_index": lambda p, v: self.mapping(p, v, {
                "file": lambda q, w: self.string_or_list(q, w, self.string),
                "directory": lambda q, w: self.string_or_list(q, w, self.string)}),
            "resources": lambda p, v: self.mapping(p, v, {
                "license": lambda q, w: self.string_or_list(q, w, self.url),
                "homepage": self.url,
                "bugtracker": lambda q, w: self.mapping(q, w, {"web": self.url, "mailto": self.email}),
                "repository": lambda q, w: self.mapping(q, w, {
                    "web": self.url, "url": self.url, "type": self.lc_string}),
            }),
            "meta-spec": lambda p, v: self.mapping(p, v, {
                "version": lambda q, w: w == "1.0.0" or self.error(
                    q, "%r: this checker knows the spec v1.0.0 only" % (w,)),
                "url": self.url,
            }, mandatory=("version",)),
        }, mandatory=("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"))


def control_fields(path):
    """The key = 'value' lines of an extension control file."""
    fields = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\s*([a-z_]+)\s*=\s*'((?:[^']|'')*)'", line)
            if m:
                fields[m.group(1)] = m.group(2).replace("''", "'")
    return fields


def changelog_version(path):
    """The newest entry's version: 'source (VERSION) dist; urgency=...'."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^[a-z0-9][a-z0-9+.-]+ \(([^()\s]+)\) ", line)
            if m:
                return m.group(1)
            if line.strip():
                break
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--meta", default=os.path.join(REPO, "META.json"))
    ap.add_argument("--control", default=os.path.join(REPO, "dalp_fdw.control"))
    ap.add_argument("--changelog", default=os.path.join(REPO, "debian", "changelog"))
    args = ap.parse_args()

    c = Checker()
    try:
        with open(args.meta, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("check_meta: cannot read %s as JSON: %s" % (args.meta, e))
    c.meta(meta)

    ext = os.path.basename(args.control)[:-len(".control")]
    control = control_fields(args.control)
    default_version = control.get("default_version")
    if not default_version:
        c.error(args.control, "no default_version")
    elif not re.match(r"^[0-9]+(\.[0-9]+){0,2}$", default_version):
        c.error(args.control, "default_version %r is not 1 to 3 numbers joined by dots" % default_version)
    else:
        parts = default_version.split(".")
        semver = ".".join(parts + ["0"] * (3 - len(parts)))
        if meta.get("version") != semver:
            c.error(args.meta, "version %r, but %s has default_version '%s' (semantic version %s)"
                    % (meta.get("version"), args.control, default_version, semver))

    if isinstance(meta, dict) and meta.get("name") != ext:
        c.error(args.meta, "name %r, but the extension is %r" % (meta.get("name"), ext))
    provides = meta.get("provides") if isinstance(meta, dict) else None
    if isinstance(provides, dict):
        if list(provides) != [ext]:
            c.error(args.meta, "provides %s, but the distribution is the one extension %r" % (sorted(provides), ext))
        entry = provides.get(ext)
        if isinstance(entry, dict):
            if entry.get("version") != meta.get("version"):
                c.error(args.meta, "provides/%s/version %r differs from version %r"
                        % (ext, entry.get("version"), meta.get("version")))
            # The Makefile builds the install script from parts; the
            # first, named after the extension, is the file that provides it.
            script = "extension/%s.sql" % ext
            if entry.get("file") != script:
                c.error(args.meta, "provides/%s/file %r, but the install script's first part is %r"
                        % (ext, entry.get("file"), script))
            for key in ("file", "docfile"):
                if isinstance(entry.get(key), str) and not os.path.isfile(os.path.join(REPO, entry[key])):
                    c.error(args.meta, "provides/%s/%s: %s does not exist" % (ext, key, entry[key]))

    deb = changelog_version(args.changelog)
    if deb is None:
        c.error(args.changelog, "no 'source (version) distribution; urgency=...' first line")
    else:
        # [epoch:]upstream[-debian_revision]
        upstream = deb.split(":", 1)[-1].rsplit("-", 1)[0]
        if upstream != meta.get("version"):
            c.error(args.changelog, "version %s (upstream %s) differs from META.json's %r"
                    % (deb, upstream, meta.get("version")))

    for e in c.errors:
        print("check_meta: " + e, file=sys.stderr)
    if c.errors:
        sys.exit(1)
    print("ok: META.json valid (PGXN Meta Spec 1.0.0); version %s in META.json, %s (default_version '%s') and %s (%s)"
          % (meta["version"], os.path.basename(args.control), default_version,
             os.path.relpath(args.changelog, REPO), deb))


if __name__ == "__main__":
    main()
