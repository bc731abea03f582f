#!/usr/bin/env python3
"""Generate openpanel_lite/ingest/referrer_data.py: Matomo's CC0 referrer lists plus our curated hosts.

Usage, from the repo root: python scripts/gen_referrers.py [DATA_DIR] [--check]
DATA_DIR defaults to ../shared/data/referrers; --check exits 1 when the committed file is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import yaml  # type: ignore[import-untyped, unused-ignore]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = Path("../shared/data/referrers")
OUTPUT = REPO_ROOT / "openpanel_lite" / "ingest" / "referrer_data.py"
COMMAND = "python scripts/gen_referrers.py"
SOURCE_REPO = "matomo-org/searchengine-and-social-list"
LINE_LIMIT = 110

# Lower rank wins when two sources list the same host: our curated judgement first, then the more
# specific Matomo lists (an AI assistant host beats a generic search host).
RANK = {"curated": 0, "ai": 1, "social": 2, "search": 3}
YAML_FILES = (("AIAssistants.yml", "ai"), ("Socials.yml", "social"), ("SearchEngines.yml", "search"))

# Our own additions, type -> name -> hosts. A host may hold '{}' (any country-code TLD or label, as in
# the Matomo lists) or a path after the host ('bing.com/chat'): both are handled like the YAML entries.
CURATED: dict[str, dict[str, tuple[str, ...]]] = {
    "ai": {
        "ChatGPT": ("com.openai.chatgpt",),
        "Claude": ("com.anthropic.claude",),
        "Gemini": ("com.google.android.apps.bard",),
        "Google AI Studio": ("aistudio.google.com",),
        "Copilot": (
            "copilot.cloud.microsoft",
            "m365.cloud.microsoft",
            "edgeservices.bing.com",
            "bing.com/chat",
        ),
        "Poe": ("poe.com",),
        "Pi": ("pi.ai",),
        "Character.AI": ("character.ai",),
        "Phind": ("phind.com",),
        "Kimi": ("kimi.com", "kimi.moonshot.cn"),
        "Doubao": ("doubao.com",),
        "Yuanbao": ("yuanbao.tencent.com",),
        "Tongyi": ("tongyi.aliyun.com",),
        "Z.ai": ("chat.z.ai",),
        "HuggingChat": ("huggingface.co/chat",),
        "Kagi Assistant": ("kagi.com/assistant",),
        "LMArena": ("lmarena.ai",),
        "Felo": ("felo.ai",),
        "Andi": ("andisearch.com",),
        "Consensus": ("consensus.app",),
        "Elicit": ("elicit.com",),
        "Manus": ("manus.im",),
    },
    "email": {
        "Gmail": ("mail.google.com", "inbox.google.com", "gmail.com", "com.google.android.gm"),
        "Outlook": (
            "outlook.live.com",
            "outlook.office.com",
            "outlook.office365.com",
            "outlook.cloud.microsoft",
            "outlook.com",
            "mail.live.com",
            "com.microsoft.office.outlook",
        ),
        "Yahoo Mail": ("mail.yahoo.com", "mail.yahoo.co.jp", "com.yahoo.mobile.client.android.mail"),
        "AOL Mail": ("mail.aol.com",),
        "Proton Mail": ("mail.proton.me", "mail.protonmail.com"),
        "Fastmail": ("app.fastmail.com", "fastmail.com"),
        "Zoho Mail": ("mail.zoho.com", "mail.zoho.eu", "mail.zoho.in"),
        "Yandex Mail": ("mail.yandex.com", "mail.yandex.{}"),
        "Mail.ru": ("e.mail.ru",),
        "Rambler Mail": ("mail.rambler.ru",),
        "GMX": ("mail.gmx.net", "mail.gmx.com", "navigator-bs.gmx.net"),
        "WEB.DE Mail": ("navigator-bs.web.de",),
        "T-Online Mail": ("email.t-online.de",),
        "Tuta": ("app.tuta.com", "mail.tutanota.com"),
        "QQ Mail": ("mail.qq.com", "wx.mail.qq.com"),
        "NetEase Mail": ("mail.163.com", "mail.126.com", "mail.yeah.net"),
        "Naver Mail": ("mail.naver.com",),
        "Daum Mail": ("mail.daum.net",),
        "Seznam Email": ("email.seznam.cz",),
        "Onet Poczta": ("poczta.onet.pl",),
        "WP Poczta": ("poczta.wp.pl",),
        "Interia Poczta": ("poczta.interia.pl",),
        "Libero Mail": ("mail.libero.it",),
        "SFR Mail": ("webmail.sfr.fr",),
        "Free Mail": ("zimbra.free.fr",),
        "HEY": ("app.hey.com",),
        "Superhuman": ("mail.superhuman.com",),
    },
    "tech": {
        "GitHub": ("github.com", "gist.github.com", "com.github.android"),
        "GitLab": ("gitlab.com",),
        "Bitbucket": ("bitbucket.org",),
        "Stack Overflow": ("stackoverflow.com",),
        "Stack Exchange": ("stackexchange.com", "superuser.com", "serverfault.com", "askubuntu.com"),
        "Hacker News": ("news.ycombinator.com",),
        "Lobsters": ("lobste.rs",),
        "DEV Community": ("dev.to",),
        "Hashnode": ("hashnode.com",),
        "Product Hunt": ("producthunt.com",),
        "Notion": ("notion.so", "notion.site", "notion.com"),
        "Linear": ("linear.app",),
        "Figma": ("figma.com",),
        "Trello": ("trello.com",),
        "npm": ("npmjs.com",),
        "PyPI": ("pypi.org",),
        "Hugging Face": ("huggingface.co",),
        "Replit": ("replit.com",),
        "CodePen": ("codepen.io",),
        "CodeSandbox": ("codesandbox.io",),
        "Vercel": ("vercel.com",),
        "Netlify": ("app.netlify.com",),
        "MDN": ("developer.mozilla.org",),
        "Kaggle": ("kaggle.com",),
        "Slashdot": ("slashdot.org",),
        "SourceForge": ("sourceforge.net",),
        "Read the Docs": ("readthedocs.org",),
    },
    "social": {
        "Slack": ("slack.com", "app.slack.com", "com.slack"),
        "Microsoft Teams": ("teams.microsoft.com", "teams.live.com", "com.microsoft.teams"),
        "WhatsApp": ("whatsapp.com", "web.whatsapp.com", "wa.me", "l.wl.co", "com.whatsapp"),
        "Messenger": ("messenger.com", "com.facebook.orca"),
        "Facebook": ("lm.facebook.com", "mbasic.facebook.com", "com.facebook.katana"),
        "Instagram": ("com.instagram.android",),
        "LinkedIn": ("com.linkedin.android",),
        "reddit": ("old.reddit.com", "out.reddit.com", "redd.it"),
        "Twitter": ("mobile.twitter.com", "com.twitter.android"),
        "YouTube": ("com.google.android.youtube",),
        "Pinterest": ("pin.it",),
        "Twitch": ("twitch.tv",),
        "Quora": ("quora.com",),
        "LINE": ("line.me",),
        "Nextdoor": ("nextdoor.com",),
        "Lemmy": ("lemmy.world",),
        "Linktree": ("linktr.ee",),
    },
    "paid": {
        "Google Ads": (
            "googleadservices.com",
            "ad.doubleclick.net",
            "adclick.g.doubleclick.net",
            "googleads.g.doubleclick.net",
            "securepubads.g.doubleclick.net",
            "pagead2.googlesyndication.com",
            "tpc.googlesyndication.com",
            "syndicatedsearch.goog",
        ),
        "Outbrain": ("paid.outbrain.com", "traffic.outbrain.com"),
        "Taboola": ("trc.taboola.com",),
        "AdRoll": ("d.adroll.com",),
        "Revcontent": ("trends.revcontent.com",),
        "Yandex Advertising": ("an.yandex.ru",),
    },
    "commerce": {
        "Amazon": ("amazon.com", "amazon.{}", "smile.amazon.com", "a.co", "amzn.to"),
        "eBay": ("ebay.com", "ebay.{}"),
        "Etsy": ("etsy.com",),
        "Shopify": ("shopify.com", "apps.shopify.com", "shop.app"),
        "AliExpress": ("aliexpress.com", "aliexpress.us"),
        "Walmart": ("walmart.com",),
        "Target": ("target.com",),
        "Best Buy": ("bestbuy.com",),
        "Mercado Libre": ("mercadolibre.com", "mercadolibre.{}", "mercadolivre.{}"),
        "Rakuten": ("rakuten.com", "rakuten.{}"),
        "Zalando": ("zalando.{}",),
        "Allegro": ("allegro.pl",),
        "Temu": ("temu.com",),
        "Shein": ("shein.com",),
        "bol.com": ("bol.com",),
        "Otto": ("otto.de",),
        "Flipkart": ("flipkart.com",),
        "Shopee": ("shopee.{}",),
        "Taobao": ("taobao.com",),
        "Tmall": ("tmall.com",),
        "JD.com": ("jd.com",),
    },
    "content": {
        "Wikipedia": ("wikipedia.org", "{}.wikipedia.org"),
        "Medium": ("medium.com",),
        "Substack": ("substack.com",),
        "WordPress.com": ("wordpress.com",),
        "Blogger": ("blogger.com",),
        "Feedly": ("feedly.com",),
        "Inoreader": ("inoreader.com",),
        "Flipboard": ("flipboard.com",),
        "Pocket": ("getpocket.com",),
        "MSN": ("msn.com",),
        "Yahoo News": ("news.yahoo.com",),
        "Apple News": ("apple.news",),
        "Internet Archive": ("web.archive.org",),
    },
}

_HOST_RE = re.compile(r"[a-z0-9_{}-]+(?:\.[a-z0-9_{}-]+)+")
# Matomo lists Android app referrers as 'android-app//<package>/...'; the browser reports the package id
# as the hostname of 'android-app://<package>/...', so the package is the key.
_ANDROID_APP = re.compile(r"android-app:?//([^/]+)")


class Entry:
    """One host (or '{}' pattern) with an optional path prefix, and its classification."""

    __slots__ = ("host", "path", "name", "type", "source")

    def __init__(self, host: str, path: str, name: str, type_: str, source: str) -> None:
        self.host, self.path, self.name, self.type, self.source = host, path, name, type_, source


def split_url_entry(raw: str) -> tuple[str, str] | None:
    """'Host[/path]' from a list entry as (host, path prefix); None when it is not a usable host."""
    text = raw.strip().lower()
    app = _ANDROID_APP.match(text)
    if app:
        text = app.group(1)
    host, _, path = text.partition("/")
    # The lookup retries without 'www.', so 'www.x' and 'x' are one key and the better source wins.
    host = host.removeprefix("www.")
    path = ("/" + path).rstrip("/") if path else ""
    if not _HOST_RE.fullmatch(host) or (path and not path.startswith("/")):
        return None
    return host, path


def read_yaml_entries(data_dir: Path) -> tuple[list[Entry], list[str]]:
    """Every host of the three Matomo files, in file order, plus the entries that had to be skipped."""
    entries: list[Entry] = []
    skipped: list[str] = []
    for filename, type_ in YAML_FILES:
        data = yaml.safe_load((data_dir / filename).read_text(encoding="utf-8"))
        for raw_name, value in data.items():
            # One name is stored URL-encoded ('Google%2B').
            name = unquote(str(raw_name)).strip()
            blocks = value if type_ == "search" else [{"urls": value}]
            for block in blocks:
                for url in block.get("urls", []):
                    parts = split_url_entry(str(url))
                    if parts is None:
                        skipped.append(f"{filename}: {name}: {url!r}")
                        continue
                    entries.append(Entry(parts[0], parts[1], name, type_, type_))
    return entries, skipped


def curated_entries() -> list[Entry]:
    """The hand-written CURATED table as entries."""
    entries: list[Entry] = []
    for type_, names in CURATED.items():
        for name, hosts in names.items():
            for host in hosts:
                parts = split_url_entry(host)
                if parts is None:
                    raise ValueError(f"bad curated host {host!r} for {name}")
                entries.append(Entry(parts[0], parts[1], name, type_, "curated"))
    return entries


def merge(entries: list[Entry]) -> tuple[dict[tuple[str, str], Entry], list[str]]:
    """One entry per (host, path): the best-ranked source wins, first listed within a source."""
    chosen: dict[tuple[str, str], Entry] = {}
    notes: list[str] = []
    for entry in sorted(entries, key=lambda e: RANK[e.source]):  # stable: file order kept within a rank
        key = (entry.host, entry.path)
        kept = chosen.get(key)
        if kept is None:
            chosen[key] = entry
        elif (kept.name, kept.type) != (entry.name, entry.type):
            notes.append(
                f"{entry.host}{entry.path}: {kept.source} {kept.name}/{kept.type} "
                f"over {entry.source} {entry.name}/{entry.type}"
            )
        elif kept.source == "curated":
            notes.append(f"{entry.host}{entry.path}: curated entry repeats {entry.source}")
    return chosen, notes


def _literal(text: str) -> str:
    """A double-quoted Python string literal (the form ruff format keeps)."""
    return json.dumps(text, ensure_ascii=False)


def render(chosen: dict[tuple[str, str], Entry], commit: str) -> str:
    """The module text; sorted so the output only depends on the data."""
    hosts = sorted((k[0], e) for k, e in chosen.items() if not k[1] and "{}" not in k[0])
    patterns = sorted((k[0], e) for k, e in chosen.items() if not k[1] and "{}" in k[0])
    by_host: dict[str, list[Entry]] = {}
    for (host, _), entry in sorted(chosen.items()):
        if entry.path:
            by_host.setdefault(host, []).append(entry)
    counts = Counter(e.type for e in chosen.values())
    count_text = ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
    lines = [
        '"""Referrer host table: host -> (name, type). GENERATED by scripts/gen_referrers.py, do not edit.',
        "",
        f"Regenerate from the repo root: {COMMAND} [DATA_DIR]",
        f"(DATA_DIR defaults to {DEFAULT_DATA_DIR}, relative to the repo root).",
        f"Data: {SOURCE_REPO} at commit {commit} (CC0 1.0):",
        "SearchEngines.yml (type search), Socials.yml (social), AIAssistants.yml (ai), plus the curated",
        "list in scripts/gen_referrers.py (ai, email, tech, social, paid, commerce, content), which wins",
        f"on conflicts. Entries: {count_text}.",
        '"""',
        "",
        "# Exact hostnames (lowercase).",
        "REFERRERS: dict[str, tuple[str, str]] = {",
    ]
    lines += [f"    {_literal(h)}: ({_literal(e.name)}, {_literal(e.type)})," for h, e in hosts]
    lines += [
        "}",
        "",
        "# '{}' stands for a country code: the TLD ('google.{}': google.de, google.co.uk, google.com.br)",
        "# or a label ('{}.bing.com': de.bing.com). Looked up with referrer._country_pattern(host).",
        "REFERRER_PATTERNS: dict[str, tuple[str, str]] = {",
    ]
    lines += [f"    {_literal(h)}: ({_literal(e.name)}, {_literal(e.type)})," for h, e in patterns]
    lines += [
        "}",
        "",
        "# Host (or pattern) -> (path prefix, name, type), longest prefix first: checked before the host.",
        "REFERRER_PATHS: dict[str, tuple[tuple[str, str, str], ...]] = {",
    ]
    for host, rules in sorted(by_host.items()):
        items = [
            f"({_literal(e.path)}, {_literal(e.name)}, {_literal(e.type)})"
            for e in sorted(rules, key=lambda r: (-len(r.path), r.path))
        ]
        if len(items) == 1:  # the one-tuple's comma is not a "magic" trailing comma: ruff joins it
            lines.append(f"    {_literal(host)}: ({items[0]},),")
        else:
            lines += [f"    {_literal(host)}: (", *(f"        {item}," for item in items), "    ),"]
    lines += ["}", ""]
    too_long = [line for line in lines if len(line) > LINE_LIMIT]
    if too_long:
        raise ValueError(f"generated lines over {LINE_LIMIT} chars: {too_long}")
    return "\n".join(lines)


def source_commit(data_dir: Path) -> str:
    """The upstream commit recorded in SOURCE.md (40 hex digits)."""
    text = (data_dir / "SOURCE.md").read_text(encoding="utf-8")
    found = re.search(r"\b[0-9a-f]{40}\b", text)
    if found is None:
        raise ValueError(f"no commit hash in {data_dir / 'SOURCE.md'}")
    return found.group(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("-v", "--verbose", action="store_true", help="list skipped entries and conflicts")
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir if args.data_dir.is_absolute() else REPO_ROOT / args.data_dir

    yaml_entries, skipped = read_yaml_entries(data_dir)
    chosen, notes = merge(curated_entries() + yaml_entries)
    text = render(chosen, source_commit(data_dir))
    if args.verbose:
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        for line in notes:
            print(f"conflict {line}", file=sys.stderr)
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}: {len(chosen)} entries, {len(skipped)} skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
