"""Keeping credentials out of text and logs: the userinfo of URLs (`http://user:key@host/v1`),
Authorization values and bearer tokens, and any secret the caller names (a server's own token).

One implementation for the commands (endpoint URLs on command lines, in results and in what
libraries log) and the tool server (the headers hostile clients send); it lives in plugins/
because the tool server, which upstream starts, may import nothing from tools/.
"""

import logging
import re

# The userinfo of a URL anywhere in a text: what follows "scheme://" up to an "@" before the host
# ends.
USERINFO = re.compile(r"(?<=://)[^/?#@\s]*@")
# An Authorization header's value (its scheme and credentials) or a bearer token, however it was
# quoted or escaped.
CREDENTIAL = re.compile(
    r"(?i)\b(authorization|bearer)\b([\s:=\"'\\]*)(?:(?:bearer|basic|digest|token)\s+)?"
    r"[^\s\"',;\\]+"
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with each of `secrets`, every Authorization value and bearer token replaced by ***
    and the userinfo of every URL (user:password@) by ***@."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return CREDENTIAL.sub(r"\1\2***", USERINFO.sub("***@", text))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record, its traceback included (libraries log URLs and
    headers too)."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        if record.exc_info:  # the traceback is formatted once, redacted, and kept as text
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.secrets
            )
        return True


def install_filter(log_filter: logging.Filter) -> logging.Filter:
    """Put `log_filter` on every handler of the root logger (call after basicConfig)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
    return log_filter


def redact_logs(secrets: tuple[str, ...] = ()) -> RedactingFilter:
    """Redact everything the root logger's handlers write (call after basicConfig)."""
    return install_filter(RedactingFilter(secrets))
