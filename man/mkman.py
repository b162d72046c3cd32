#!/usr/bin/env python3
"""mkman - breakwater's man pages, from README.md and docs/*.md (the one source).

    man/mkman.py [--readme FILE]... [--docs DIR]... [--no-docs] --out DIR [--version V]
    man/mkman.py [--readme FILE]... [--docs DIR]... [--no-docs] --check-keys src/conf.c

The documentation is read as one set of "##" sections, found by their
title whichever file holds them: each --readme FILE (default: README.md
beside man/), then every *.md of each --docs DIR, in name order. Without
--docs, the docs/ directory beside the first --readme file is read when it
exists; --no-docs reads the --readme files alone (e.g. one file that holds
the key table, for --check-keys). A title found in two files is an error.
The first --readme file is the front page: its paragraph before the first
"##" is the title paragraph; the other files' text before their first "##"
is not read.

The first form writes DIR/breakwater.8 and DIR/breakwater.conf.5 (roff,
man macros) from those sections, so that the pages say what the
documentation says and nothing else:

  breakwater(8)       NAME and DESCRIPTION from the front page's title
                      paragraph and "What it is for"; SYNOPSIS, COMMANDS
                      AND OPTIONS and EXIT STATUS from "Command line"; then
                      the sections named in PAGE8_SECTIONS; FILES from the
                      key table's defaults
  breakwater.conf(5)  "Configuration reference": format and values, the key
                      table (KEYS), the errors (ERRORS)

Today README.md holds "What it is for"; docs/operations.md "Command line",
"Bans", "State that survives restarts" and "Metrics"; docs/deployment.md
"Install as a service"; docs/watch.md "Watch: an exposed MTA's log";
docs/how-it-works.md "Security: privilege separation"; and
docs/configuration.md "Configuration reference".

A link to a section shown on the same page becomes its text; to a section
of the other page, "TEXT in breakwater.conf(5)" (or breakwater(8)); to any
other section, "TEXT in FILE" (FILE relative to the front page's
directory; "in the README" for the front page). A link to a heading that
does not exist is an error. A link to a file is shown as "TEXT <PATH>".

The second form compares the key table ("Configuration reference") with
conf_keys[] in src/conf.c: the same keys, and where the table gives a
literal default (`text`, or "empty") the same default text. It prints each
difference, naming the file that holds the table, and exits 1 when there
is one, 0 otherwise.

Markdown understood (what the documentation uses): "#"/"##"/"###"
headings, paragraphs, "- " lists with indented continuation, "1. " lists,
code blocks indented by four spaces, pipe tables, `code`, **bold**,
*italic*, [text](#anchor), [text](FILE.md#anchor) and [text](FILE) links.
Python 3 standard library only.
"""

import argparse
import os
import re
import sys
import tempfile
import time

CONF_PATH_DEFAULT = "/etc/breakwater/breakwater.conf"

# "##" sections that become sections of breakwater(8), in this order, with
# their man-page headings.
PAGE8_SECTIONS = [
    ("Install as a service", "SERVICE"),
    ("Watch: an exposed MTA's log", "WATCH"),
    ("Bans", "BANS"),
    ("State that survives restarts", "STATE"),
    ("Security: privilege separation", "SECURITY"),
    ("Metrics", "METRICS"),
]

# Descriptive last columns of tables: shown without a "Header:" label.
UNLABELED_COLUMNS = {"What it does", "What", "Does", "Meaning", "Lines", "Reply", "What for"}


# --- Markdown -----------------------------------------------------------------

class Block:
    """kind: 'para' (text), 'code' (lines), 'table' (rows of cells, header
    first), 'list' (items: lists of blocks; ordered), 'heading' (level,
    text)."""

    def __init__(self, kind, **kw):
        self.kind = kind
        self.__dict__.update(kw)


def split_row(line):
    """Cells of one pipe-table row; a | inside `code` does not split."""
    cells, cell, in_code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    cells.append(cell.strip())
    return cells


def indent_of(line):
    return len(line) - len(line.lstrip(" "))


def take_items(lines, i, marker):
    """A list starting at lines[i]: ([item lines...], next index). Items
    continue with indented or blank lines."""
    items = []
    n = len(lines)
    while i < n:
        m = marker.match(lines[i])
        if not m:
            break
        width = m.end()
        item = [lines[i][width:]]
        i += 1
        while i < n:
            line = lines[i]
            if line.strip() == "":
                j = i
                while j < n and lines[j].strip() == "":
                    j += 1
                if j < n and indent_of(lines[j]) >= 2:
                    item.extend([""] * (j - i))
                    i = j
                    continue
                break
            if indent_of(line) < 2:
                break
            item.append(line[min(width, indent_of(line)):])
            i += 1
        items.append(item)
        while i < n and lines[i].strip() == "" and i + 1 < n and marker.match(lines[i + 1]):
            i += 1
    return items, i


BULLET = re.compile(r"- ")
NUMBERED = re.compile(r"\d+\. ")


def parse_blocks(lines):
    """Markdown lines -> [Block]."""
    blocks, i, n = [], 0, len(lines)
    while i < n:
        line = lines[i]
        if line.strip() == "":
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            blocks.append(Block("heading", level=level, text=line[level:].strip()))
            i += 1
        elif line.startswith("    "):
            code = []
            while i < n and (lines[i].startswith("    ") or lines[i].strip() == ""):
                code.append(lines[i][4:])
                i += 1
            while code and code[-1].strip() == "":
                code.pop()
            blocks.append(Block("code", lines=code))
        elif line.startswith("|"):
            rows = []
            while i < n and lines[i].startswith("|"):
                row = split_row(lines[i])
                if not all(re.fullmatch(r":?-+:?", c) for c in row):
                    rows.append(row)
                i += 1
            blocks.append(Block("table", rows=rows))
        elif BULLET.match(line) or NUMBERED.match(line):
            marker = BULLET if BULLET.match(line) else NUMBERED
            items, i = take_items(lines, i, marker)
            blocks.append(Block("list", ordered=marker is NUMBERED,
                                items=[parse_blocks(item) for item in items]))
        else:
            text = []
            while (i < n and lines[i].strip() != "" and not lines[i].startswith("|")
                   and not lines[i].startswith("#") and not BULLET.match(lines[i])):
                text.append(lines[i].strip())
                i += 1
            blocks.append(Block("para", text=" ".join(text)))
    return blocks


def slug(title):
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", title.lower())
    return s.replace(" ", "-")


class Docs:
    """The documentation: the front page's title paragraph and the "##"
    sections of every file (blocks; "###" headings stay inside as heading
    blocks), each with the file that holds it.

    files: [(path, text)], the front page first. Paths are shown relative
    to the front page's directory (root)."""

    def __init__(self, files):
        self.root = os.path.dirname(os.path.abspath(files[0][0]))
        self.front = self.normal(files[0][0])
        self.paths = [self.normal(path) for path, _ in files]
        self.intro = []
        self.sections = {}      # title -> lines
        self.where = {}         # title -> path (normal form)
        self.order = []
        self.anchors = {}       # (path, anchor) -> title
        for (_, text), path in zip(files, self.paths):
            self.add(path, text)

    def normal(self, path):
        return os.path.normpath(os.path.abspath(path))

    def shown(self, path):
        """path as the reader knows it: relative to root when inside it."""
        rel = os.path.relpath(path, self.root)
        return path if rel.startswith("..") else rel

    def add(self, path, text):
        current = self.intro if path == self.front else []
        title = None
        for line in text.splitlines():
            if line.startswith("## "):
                title = line[3:].strip()
                if title in self.sections:
                    raise SystemExit("mkman: section '## %s' is in both %s and %s"
                                     % (title, self.shown(self.where[title]), self.shown(path)))
                current = self.sections[title] = []
                self.where[title] = path
                self.order.append(title)
                self.anchors[(path, slug(title))] = title
            elif line.startswith("# "):
                continue
            else:
                if line.startswith("### ") and title is not None:
                    self.anchors[(path, slug(line[4:].strip()))] = title
                current.append(line)

    def blocks(self, title):
        if title not in self.sections:
            raise SystemExit("mkman: no section '## %s' in %s"
                             % (title, ", ".join(self.shown(p) for p in self.paths)))
        return parse_blocks(self.sections[title])

    def file_of(self, title):
        return self.where.get(title, self.front)

    def target(self, source, target):
        """A link's target, from a file: (path, anchor or None)."""
        path, _, anchor = target.partition("#")
        path = self.normal(os.path.join(os.path.dirname(source), path)) if path else source
        return path, (anchor if "#" in target else None)


def read_docs(readmes, docs_dirs=None):
    """Docs from the --readme files and every *.md of docs_dirs (None: the
    docs/ beside the first --readme file, if it exists)."""
    if docs_dirs is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(readmes[0])), "docs")
        docs_dirs = [beside] if os.path.isdir(beside) else []
    paths = list(readmes)
    for d in docs_dirs:
        paths += sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".md"))
    files = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            files.append((path, f.read()))
    return Docs(files), paths


# --- roff -----------------------------------------------------------------------

def escape(text, code=False):
    """Plain text -> roff: backslash, non-ASCII, minus signs in code."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-" and code:
            out.append("\\-")
        elif ord(ch) > 126:
            out.append("\\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


INLINE = re.compile(r"(`[^`]*`|\*\*.+?\*\*|\[[^\]]*\]\([^)]*\)|(?<![\w*])\*[^*\s][^*]*?\*(?![\w*]))")


class Page:
    """One man page being written: its sections (for links), the file whose
    text is being written (source, for relative links) and lines."""

    def __init__(self, docs, name, section, sections, other):
        self.docs = docs
        self.name, self.section = name, section
        self.sections = set(sections)   # titles shown on this page
        self.other = other              # (name, section, titles) of the other page
        self.source = docs.front
        self.lines = []

    def section_blocks(self, title):
        """The blocks of a section, its file now the source of links."""
        self.source = self.docs.file_of(title)
        return self.docs.blocks(title)

    # inline markup
    def inline(self, text, font="R"):
        out = []
        for part in INLINE.split(text):
            if not part:
                continue
            if part.startswith("`"):
                code = escape(part[1:-1], code=True)
                out.append(code if font == "B" else "\\fB%s\\f%s" % (code, font))
            elif part.startswith("**"):
                out.append("\\fB%s\\f%s" % (self.inline(part[2:-2], "B"), font))
            elif part.startswith("["):
                m = re.match(r"\[([^\]]*)\]\(([^)]*)\)", part)
                out.append(self.link(m.group(1), m.group(2), font))
            elif part.startswith("*"):
                out.append("\\fI%s\\f%s" % (self.inline(part[1:-1], "I"), font))
            else:
                out.append(escape(part))
        return "".join(out)

    def link(self, text, target, font):
        shown = self.inline(text, font)
        docs = self.docs
        path, anchor = docs.target(self.source, target)
        if path not in docs.paths:
            where = docs.shown(path) + ("#" + anchor if anchor is not None else "")
            return "%s <%s>" % (shown, escape(where))
        if anchor is None:
            return "%s <%s>" % (shown, escape(docs.shown(path)))
        title = docs.anchors.get((path, anchor))
        if title is None:
            raise SystemExit("mkman: %s: [%s](%s): %s has no such heading"
                             % (docs.shown(self.source), text, target, docs.shown(path)))
        if title in self.sections:
            return shown
        if title in self.other[2]:
            return "%s in \\fB%s\\f%s(%s)" % (shown, self.other[0], font, self.other[1])
        if path == docs.front:
            return "%s in the README" % shown
        return "%s in %s" % (shown, escape(docs.shown(path)))

    # output
    def text(self, line):
        """A text line, never read as a request."""
        if line.startswith((".", "'")):
            line = "\\&" + line
        self.lines.append(line)

    def heading(self, level, title):
        self.lines.append('.%s "%s"' % ("SH" if level <= 2 else "SS", escape(title)))

    def code(self, lines, indent=4):
        self.lines += [".PP", ".RS %d" % indent, ".nf"]
        for line in lines:
            self.text(escape(line, code=True) if line.strip() else "\\&")
        self.lines += [".fi", ".RE"]

    def table(self, rows):
        header, body = rows[0], rows[1:]
        for row in body:
            self.lines.append(".TP")
            self.text(self.inline(row[0]))
            parts = []
            for i, cell in enumerate(row[1:], 1):
                if not cell:
                    continue
                name = header[i] if i < len(header) else ""
                if len(header) == 2 or (i == len(header) - 1 and name in UNLABELED_COLUMNS):
                    parts.append(self.inline(cell))
                else:
                    parts.append("\\fI%s:\\fR %s" % (self.inline(name, "I"), self.inline(cell)))
            for j, p in enumerate(parts):
                if j or len(header) > 2:
                    self.lines.append(".br")   # more columns: each on a line of its own
                self.text(p)

    def blocks(self, blocks):
        for b in blocks:
            if b.kind == "para":
                self.lines.append(".PP")
                self.text(self.inline(b.text))
            elif b.kind == "code":
                self.code(b.lines)
            elif b.kind == "table":
                self.lines.append(".PP")
                self.table(b.rows)
            elif b.kind == "heading":
                self.heading(b.level, b.text)
            elif b.kind == "list":
                self.list(b)

    def list(self, b):
        for n, item in enumerate(b.items, 1):
            mark = "%d." % n if b.ordered else "\\(bu"
            first, rest = (item[0], item[1:]) if item and item[0].kind == "para" else (None, item)
            self.lines.append(".IP %s %d" % (mark, 4 if b.ordered else 2))
            if first is not None:
                self.text(self.inline(first.text))
            if rest:
                self.lines.append(".RS %d" % (4 if b.ordered else 2))
                self.blocks(rest)
                self.lines.append(".RE")
        self.lines.append(".PP")

    def write(self, path):
        text = "\n".join(self.lines) + "\n"
        # a .PP right before another paragraph macro or a heading is empty
        text = re.sub(r"\.PP\n(?=\.(PP|SH|SS|TP|IP)\b)", "", text)
        text = re.sub(r"\.PP\n$", "", text)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".mkman-")
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


# --- the two pages ----------------------------------------------------------------

def key_table(docs):
    """The rows of the key table in "Configuration reference"."""
    for b in docs.blocks("Configuration reference"):
        if b.kind == "table" and b.rows[0][:2] == ["Key", "Default"]:
            return b.rows[1:]
    raise SystemExit("mkman: no | Key | Default | ... table under '## Configuration reference'")


def literal_default(cell):
    """The default text a key table cell states literally, or None for prose."""
    m = re.fullmatch(r"`([^`]*)`", cell)
    if m:
        return m.group(1)
    return "" if cell == "empty" else None


def key_default(docs, key):
    for row in key_table(docs):
        if row[0] == "`%s`" % key:
            return literal_default(row[1])
    raise SystemExit("mkman: key %s is not in the key table (%s)"
                     % (key, docs.shown(docs.file_of("Configuration reference"))))


def preamble(page, title, section, date, version, manual):
    page.lines += [
        '.\\" %s(%s) - generated by man/mkman.py from README.md and docs/*.md; do not edit.'
        % (page.name, section),
        '.TH "%s" "%s" "%s" "breakwater %s" "%s"' % (title, section, date, version, manual),
        ".nh",
        ".ad l",
    ]


def split_at(blocks, predicate):
    for i, b in enumerate(blocks):
        if b.kind == "para" and predicate(b.text):
            return blocks[:i], blocks[i:]
    return blocks, []


def synopsis(page, code_lines):
    page.lines += [".nf"]
    for line in code_lines:
        words = line.split(" ", 2)
        if len(words) >= 2 and re.fullmatch(r"[a-z]+", words[1]):
            head, rest = " ".join(words[:2]), line[len(words[0]) + len(words[1]) + 1:]
        else:
            head, rest = words[0], line[len(words[0]):]
        page.text("\\fB%s\\fR%s" % (escape(head, code=True), escape(rest, code=True)))
    page.lines += [".fi"]


def page8(docs, date, version):
    titles = ["What it is for", "Command line"] + [t for t, _ in PAGE8_SECTIONS]
    page = Page(docs, "breakwater", "8", titles,
                ("breakwater.conf", "5", ["Configuration reference"]))
    preamble(page, "BREAKWATER", "8", date, version, "System Manager's Manual")
    intro = parse_blocks(docs.intro)
    first = intro[0].text
    page.heading(2, "NAME")
    what = first.split(":")[0].rstrip(".")
    page.text("breakwater \\- %s" % page.inline(what[0].lower() + what[1:]))

    cmdline = page.section_blocks("Command line")
    if not cmdline or cmdline[0].kind != "code":
        raise SystemExit("mkman: '## Command line' must start with the synopsis code block")
    page.heading(2, "SYNOPSIS")
    synopsis(page, cmdline[0].lines)

    page.heading(2, "DESCRIPTION")
    page.source = docs.front
    page.blocks(intro)
    page.blocks(page.section_blocks("What it is for"))

    page.source = docs.file_of("Command line")
    options, status = split_at(cmdline[1:], lambda t: t.startswith("Exit status"))
    page.heading(2, "COMMANDS AND OPTIONS")
    page.blocks(options)
    if status:
        page.heading(2, "EXIT STATUS")
        page.blocks(status[1:])

    for title, heading in PAGE8_SECTIONS:
        if title not in docs.sections:
            continue
        page.heading(2, heading)
        page.blocks(page.section_blocks(title))

    files(page, docs)
    page.heading(2, "SEE ALSO")
    page.text("\\fBbreakwater.conf\\fR(5), \\fBnft\\fR(8), \\fBipset\\fR(8), "
              "\\fBiptables\\fR(8), \\fBsystemctl\\fR(1), \\fBsystemd.exec\\fR(5)")
    page.lines.append(".PP")
    page.text("README.md and docs/ in the source distribution, which this page is generated "
              "from; %s also covers deployment in front of Postfix, Exim and Courier."
              % escape(docs.shown(docs.file_of("Deployment in front of an MTA"))))
    return page


def files(page, docs):
    """FILES: the paths the documentation names as defaults."""
    cmdline = "\n".join(docs.sections.get("Command line", []))
    m = re.search(r"-c FILE`: configuration file; default `([^`]+)`", cmdline)
    conf_path = m.group(1) if m else CONF_PATH_DEFAULT
    page.heading(2, "FILES")
    entries = [
        (conf_path, "the configuration file, see \\fBbreakwater.conf\\fR(5)"),
        ((key_default(docs, "state_dir") or "") + "/breakwater.mdb",
         "the state store (\\fBstate_dir\\fR): verdict cache and ban records"),
        (key_default(docs, "control_socket") or "",
         "the control socket of \\fBbreakwater ctl\\fR (\\fBcontrol_socket\\fR)"),
    ]
    if "Install as a service" in docs.sections:
        entries.append(("breakwater.service",
                        "the systemd unit that \\fBmake install\\fR puts in place"))
    for path, what in entries:
        page.lines.append(".TP")
        page.text("\\fI%s\\fR" % escape(path))
        page.text(what)


def page5(docs, date, version):
    page = Page(docs, "breakwater.conf", "5", ["Configuration reference"],
                ("breakwater", "8", ["What it is for", "Command line"]
                 + [t for t, _ in PAGE8_SECTIONS]))
    preamble(page, "BREAKWATER.CONF", "5", date, version, "File Formats Manual")
    page.heading(2, "NAME")
    page.text("breakwater.conf \\- configuration file of \\fBbreakwater\\fR(8)")
    page.heading(2, "SYNOPSIS")
    cmdline = "\n".join(docs.sections.get("Command line", []))
    m = re.search(r"-c FILE`: configuration file; default `([^`]+)`", cmdline)
    page.text("\\fI%s\\fR" % escape(m.group(1) if m else CONF_PATH_DEFAULT))
    blocks = page.section_blocks("Configuration reference")
    description, rest = split_at(blocks, lambda t: t.startswith("Every key"))
    keys, errors = split_at(rest, lambda t: t.startswith("Errors"))
    page.heading(2, "DESCRIPTION")
    page.blocks(description)
    page.heading(2, "KEYS")
    page.blocks(keys)
    if errors:
        page.heading(2, "ERRORS")
        page.blocks(errors)
    page.heading(2, "SEE ALSO")
    page.text("\\fBbreakwater\\fR(8); %s in the source distribution, which this page is "
              "generated from." % escape(docs.shown(docs.file_of("Configuration reference"))))
    return page


# --- the key table against src/conf.c -----------------------------------------------

def conf_c_keys(text):
    """{key: default text} of conf_keys[] in src/conf.c."""
    m = re.search(r"conf_keys\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
    if m is None:
        raise SystemExit("mkman: no conf_keys[] table in src/conf.c")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    keys = {}
    for entry in re.finditer(r'\{\s*"([^"]+)"\s*,\s*\w+\s*,\s*(?:[^,(]|\([^)]*\))*,\s*'
                             r'"((?:[^"\\]|\\.)*)"', body):
        keys[entry.group(1)] = entry.group(2).encode().decode("unicode_escape")
    if not keys:
        raise SystemExit("mkman: conf_keys[] in src/conf.c has no entries I can read")
    return keys


def check_keys(docs, conf_c_text):
    """Differences between the key table and conf_keys[], as lines naming
    the file that holds the table."""
    c_keys = conf_c_keys(conf_c_text)
    doc = docs.shown(docs.file_of("Configuration reference"))
    problems, seen = [], set()
    for row in key_table(docs):
        m = re.fullmatch(r"`([a-z0-9_]+)`", row[0])
        if m is None:
            problems.append("%s key table: first cell is not a `key`: %r" % (doc, row[0]))
            continue
        key = m.group(1)
        if key in seen:
            problems.append("%s key table: %s is listed twice" % (doc, key))
        seen.add(key)
        if key not in c_keys:
            problems.append("%s documents %s, which src/conf.c conf_keys[] does not have"
                            % (doc, key))
            continue
        stated = literal_default(row[1]) if len(row) > 1 else None
        if stated is not None and stated != c_keys[key]:
            problems.append("%s: %s says the default is %r, src/conf.c has %r"
                            % (key, doc, stated, c_keys[key]))
    for key in c_keys:
        if key not in seen:
            problems.append("src/conf.c has %s, which the key table in %s does not document"
                            % (key, doc))
    return problems


# --- main ------------------------------------------------------------------------

def page_date(paths):
    """The date of the newest source file (SOURCE_DATE_EPOCH wins), so a
    rebuild is identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        stamp = int(epoch)
    else:
        stamp = max(int(os.stat(path).st_mtime) for path in paths)
    return time.strftime("%Y-%m-%d", time.gmtime(stamp))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", action="append", metavar="FILE",
                    help="a Markdown file to read, the front page first (may be repeated; "
                         "default: README.md beside man/)")
    ap.add_argument("--docs", action="append", metavar="DIR",
                    help="read every DIR/*.md too (may be repeated; default: the docs/ "
                         "beside the first --readme file, if it exists)")
    ap.add_argument("--no-docs", action="store_true",
                    help="read the --readme files alone")
    ap.add_argument("--out", help="directory for breakwater.8 and breakwater.conf.5")
    ap.add_argument("--version", default="", help="shown in the page footer")
    ap.add_argument("--check-keys", metavar="CONF_C",
                    help="compare the key table with conf_keys[] in this file")
    args = ap.parse_args()
    readmes = args.readme or [os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "..", "README.md")]
    if args.no_docs and args.docs:
        ap.error("--no-docs and --docs exclude each other")
    docs, paths = read_docs(readmes, [] if args.no_docs else args.docs)

    if args.check_keys:
        with open(args.check_keys, encoding="utf-8") as f:
            problems = check_keys(docs, f.read())
        for p in problems:
            print("mkman: %s" % p, file=sys.stderr)
        return 1 if problems else 0
    if not args.out:
        ap.error("give --out DIR or --check-keys CONF_C")
    os.makedirs(args.out, exist_ok=True)
    date = page_date(paths)
    page8(docs, date, args.version).write(os.path.join(args.out, "breakwater.8"))
    page5(docs, date, args.version).write(os.path.join(args.out, "breakwater.conf.5"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
