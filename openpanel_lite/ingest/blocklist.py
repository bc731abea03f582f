"""Event-name blocklist (openpanel-facts §1.14): scanner and injection probes sent as event names.

Vulnerability scanners post URLs and payloads as event names; rejecting them keeps the event list clean.
"""

from __future__ import annotations

import re
from functools import lru_cache

BLOCKED_EVENT_NAME_MESSAGE = "Event name contains blocked content"
MAX_EVENT_NAME_LENGTH = 80

# Lowercase substrings per category. Each is specific enough not to hit ordinary names
# ("select_plan", "Download PDF"): whole probe phrases, not single SQL or shell words.
BLOCKED_SUBSTRINGS: dict[str, tuple[str, ...]] = {
    "sql_injection": (
        "union select",
        "union all select",
        "select * from",
        "' or '",
        '" or "',
        "' or 1=1",
        " or 1=1",
        "1=1--",
        "pg_sleep",
        "sleep(",
        "benchmark(",
        "waitfor delay",
        "information_schema",
        "xp_cmdshell",
        "load_file(",
        "into outfile",
        "drop table",
        "@@version",
    ),
    "command_injection": (
        "/bin/bash",
        "/bin/sh",
        "cmd.exe",
        "powershell.exe",
        "wget http",
        "curl http",
        "$(curl",
        "$(wget",
        "nc -e ",
        "/dev/tcp/",
        "chmod +x",
        "rm -rf",
        "base64 -d",
    ),
    "path_traversal": (
        "../",
        "..\\",
        "%2e%2e",
        "..%2f",
        "%252e",
        "/etc/passwd",
        "/etc/shadow",
        "/proc/self/",
        "c:\\windows",
        "win.ini",
        "boot.ini",
    ),
    "template_injection": ("${", "%{", "{{7*7", "<%="),
    "xml_external_entity": ("<!doctype", "<!entity", "<?xml", "file:///"),
    "script_injection": ("<script", "onerror=", "<iframe"),
    "header_injection": ("bcc:", "%0a", "%0d"),
    "scanner_file": (
        "wp-config.php",
        "wp-login.php",
        "xmlrpc.php",
        ".git/config",
        ".git/head",
        "/.env",
        ".htaccess",
        ".htpasswd",
        ".ds_store",
        "/cgi-bin/",
        "phpinfo",
        "phpunit",
        "eval-stdin",
        "/actuator/",
        "/server-status",
        "web.config",
        "/.aws/",
        "/.ssh/",
        "id_rsa",
    ),
}

# Names shaped like probed paths: '/config.php', '/.env', '/wp-login', '/phpmyadmin/', '/a/b.php'.
PATH_SCAN = re.compile(
    r"^/[a-z_-]+\.(?:php|env|yml|yaml|json|xml|config|ini|bak|sql|log)"
    r"|^/\.[a-z]"
    r"|^/(?:wp-|wordpress)"
    r"|^/phpmyadmin"
    r"|^/.+\.php$"
)


def is_blocked_event_name(name: str) -> bool:
    """True when the name must be rejected with BLOCKED_EVENT_NAME_MESSAGE."""
    return blocked_category(name) is not None


@lru_cache(maxsize=4096)
def blocked_category(name: str) -> str | None:
    """Why a name is blocked ('too_long', 'newline', 'path_scan' or a BLOCKED_SUBSTRINGS key), else None."""
    # JS counts UTF-16 code units (an emoji is 2), and upstream's 80-char limit is a JS .length.
    if len(name.encode("utf-16-le", "surrogatepass")) // 2 > MAX_EVENT_NAME_LENGTH:
        return "too_long"
    if "\n" in name or "\r" in name:
        return "newline"
    lowered = name.lower()
    for category, needles in BLOCKED_SUBSTRINGS.items():
        if any(needle in lowered for needle in needles):
            return category
    if PATH_SCAN.search(lowered):
        return "path_scan"
    return None
