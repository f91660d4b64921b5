"""plugins.redaction: one redaction for the commands' endpoint URLs and the tool server's log."""

import logging
import sys

from plugins.redaction import RedactingFilter, redact


def record(msg, *args, exc_info=None):
    return logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, exc_info)


def test_url_userinfo_is_redacted_in_text_and_logs():
    assert (
        redact("--urls=http://user:k3y@host:8000/v1 https://tok@h/v1 http://h/a@b")
        == "--urls=http://***@host:8000/v1 https://***@h/v1 http://h/a@b"
    )
    logged = record("calling %s", "http://u:k3y@h/v1")
    assert RedactingFilter().filter(logged) and logged.getMessage() == "calling http://***@h/v1"


def test_authorization_values_bearer_tokens_and_given_secrets_are_redacted():
    # the scheme is not the secret: what follows it is
    assert redact("Authorization: Bearer abc123") == "Authorization: ***"
    assert redact("b'authorization: basic dXNlcjpwdw=='") == "b'authorization: ***'"
    assert redact("headers={'authorization': 'xyz'}") == "headers={'authorization': '***'}"
    assert redact("token=bearer abc, next") == "token=bearer ***, next"
    assert redact("key sekrit-token seen twice: sekrit-token", ("sekrit-token", "")) == (
        "key *** seen twice: ***"
    )
    assert redact("nothing to hide at http://h:8000/v1") == "nothing to hide at http://h:8000/v1"


def test_a_traceback_is_redacted_too():
    try:
        raise RuntimeError("cannot reach http://user:k3y@h/v1 with Bearer t0ken")
    except RuntimeError:
        logged = record("failed", exc_info=sys.exc_info())
    assert RedactingFilter().filter(logged)
    assert "k3y" not in logged.exc_text and "t0ken" not in logged.exc_text
    assert "http://***@h/v1" in logged.exc_text and "RuntimeError" in logged.exc_text
    handler = logging.StreamHandler()
    assert "k3y" not in handler.format(logged)
