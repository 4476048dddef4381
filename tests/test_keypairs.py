"""Key pairs made in memory and the PKCS#12 bundles integrations' certificates are stored as."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from sidecar.keypairs import BadBundle, generate_key_pair, load_bundle, pkcs12_bundle
from sidecar.sensitive import Sensitive

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_bundle_opens_with_its_password_to_the_same_key_and_certificate() -> None:
    pair = generate_key_pair("azsidecar-web", NOW, timedelta(hours=24))
    bundle = pkcs12_bundle(pair, "azsidecar-intent-x")
    opened = load_bundle(bundle.pfx, bundle.password)
    assert (opened.thumbprint, opened.key_pem, opened.cert_der) == (
        pair.thumbprint,
        pair.key_pem,
        pair.cert_der,
    )
    assert (opened.not_before, opened.not_after) == (NOW, NOW + timedelta(hours=24))
    # One key and one certificate, nothing else: what Go's x/crypto/pkcs12 insists on.
    parsed = pkcs12.load_pkcs12(
        base64.b64decode(bundle.pfx.reveal()), bundle.password.reveal().encode()
    )
    assert parsed.key is not None and parsed.cert is not None and parsed.additional_certs == []


def test_every_bundle_has_its_own_random_password_and_hides_it() -> None:
    pair = generate_key_pair("azsidecar-web", NOW, timedelta(hours=24))
    first, second = pkcs12_bundle(pair, "a"), pkcs12_bundle(pair, "a")
    assert first.password != second.password and len(first.password.reveal()) >= 40
    assert first.password.reveal() not in repr(first) and first.pfx.reveal() not in repr(first)


def test_a_wrong_password_or_damaged_bundle_is_a_bad_bundle_without_its_content() -> None:
    pair = generate_key_pair("azsidecar-web", NOW, timedelta(hours=24))
    bundle = pkcs12_bundle(pair, "a")
    with pytest.raises(BadBundle) as err:
        load_bundle(bundle.pfx, Sensitive("not-the-password"))
    assert bundle.pfx.reveal()[:20] not in str(err.value)
    with pytest.raises(BadBundle):
        load_bundle(Sensitive("AAAA"), bundle.password)
