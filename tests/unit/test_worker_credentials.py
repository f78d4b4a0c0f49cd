"""The worker's Faust clients log in with the same CLASSTRACE_KAFKA_* security settings as every role."""

from __future__ import annotations

import faust
import pytest

from classtrace.errors import ConfigError
from stream_processors.app import broker_credentials


def test_plaintext_needs_no_credentials():
    assert broker_credentials({}) is None
    assert broker_credentials({"security.protocol": "plaintext"}) is None


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_scram_credentials_reach_faust(protocol):
    creds = broker_credentials(
        {
            "security.protocol": protocol,
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "classtrace-worker",
            "sasl.password": "s3cret",
        }
    )
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("classtrace-worker", "s3cret")
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert (creds.ssl_context is not None) == (protocol == "SASL_SSL")


def test_ssl_alone_is_an_ssl_context():
    assert isinstance(broker_credentials({"security.protocol": "SSL"}), faust.SSLCredentials)


def test_an_unknown_protocol_is_refused():
    with pytest.raises(ConfigError, match=r"security\.protocol"):
        broker_credentials({"security.protocol": "KERBEROS_ONLY"})
