#!/usr/bin/env python3
"""Every relative link of the repository's Markdown files resolves.

Run as a test: python3 tests/tools/check_doc_links.py <repository root>
For each [text](target) and ![alt](target) outside code (fences and inline code are skipped), except web and mail
links: the target file must exist inside the repository, and a #anchor must name a heading of the target Markdown
file (or of the file itself, for a bare #anchor) by GitHub's rule: the heading's text without its markup,
lower-cased, every character other than a letter, digit, space, '-' or '_' dropped, spaces turned into '-', and
'-1', '-2' ... appended to repeats. Exits 1 listing every broken link, naming the file and line.
"""
import os
import re
import sys

SKIP_DIRS = {".git", "build", ".gpu", ".venv-torch", "node_modules"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files(root):
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(folder, name)


def lines_outside_code(path):
    """(line number, text) of every line outside fenced code, with inline code spans blanked."""
    in_fence = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if not in_fence:
                yield number, re.sub(r"`[^`]*`", "``", line)


def slug(heading):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_|_(?!\w)", "", text)  # emphasis underscores, not those inside words
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen, found = {}, set()
        in_fence = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if FENCE.match(line):
                    in_fence = not in_fence
                    continue
                m = None if in_fence else HEADING.match(line)
                if m:
                    s = slug(m.group(2))
                    found.add(s if s not in seen else f"{s}-{seen[s]}")
                    seen[s] = seen.get(s, 0) + 1
        cache[path] = found
    return cache[path]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_doc_links.py <repository root>")
    root = os.path.realpath(sys.argv[1])
    broken, count = [], 0
    for md in markdown_files(root):
        where = os.path.relpath(md, root)
        for number, line in lines_outside_code(md):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
                    continue
                count += 1
                path, _, anchor = target.partition("#")
                resolved = os.path.realpath(os.path.join(os.path.dirname(md), path)) if path else md
                if resolved != root and not resolved.startswith(root + os.sep):
                    broken.append(f"{where}:{number}: {target}: outside the repository")
                elif not os.path.exists(resolved):
                    broken.append(f"{where}:{number}: {target}: no such file")
                elif anchor and not resolved.endswith(".md"):
                    broken.append(f"{where}:{number}: {target}: an anchor into a file that is not Markdown")
                elif anchor and anchor not in anchors(resolved):
                    broken.append(f"{where}:{number}: {target}: no heading with the anchor #{anchor}")
    if broken:
        print("broken links in the documentation:\n" + "\n".join(broken))
        return 1
    print(f"doc_links: {count} relative links resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
