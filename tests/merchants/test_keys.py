import re

from pgi.merchants.keys import generate_key, hash_key, hashes_match, split_prefix


def test_generated_key_is_pgi_prefix_and_secret_with_the_prefix_returned_apart():
    full_key, prefix = generate_key()

    assert re.fullmatch(r"pgi_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", full_key), full_key
    assert full_key.split("_", 2)[1] == prefix
    assert split_prefix(full_key) == prefix


def test_generated_keys_and_prefixes_are_unique():
    keys = [generate_key() for _ in range(1000)]

    assert len({k for k, _ in keys}) == 1000
    assert len({p for _, p in keys}) == 1000


def test_hash_is_sha256_hex_and_does_not_contain_the_key():
    full_key, _ = generate_key()

    digest = hash_key(full_key)

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert full_key.split("_", 2)[2] not in digest
    assert hashes_match(full_key, digest)
    assert not hashes_match(full_key + "x", digest)


def test_secret_may_contain_underscores():
    assert split_prefix("pgi_0123456789ab_se_cr_et") == "0123456789ab"


def test_malformed_keys_have_no_prefix():
    for token in [
        "",
        "pgi",
        "pgi_0123456789ab",
        "pgi_0123456789ab_",
        "xyz_0123456789ab_secret",
        "pgi_0123456789a_secret",
        "pgi_0123456789abc_secret",
        "pgi_0123456789AB_secret",
        "pgi_0123456789a\x00_secret",
        "pgi_0123456789a\n_secret",
        "pgi_ 123456789ab_secret",
    ]:
        assert split_prefix(token) is None, repr(token)
