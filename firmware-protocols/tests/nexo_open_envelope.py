#!/usr/bin/env python3
"""Opens an Adyen Terminal API local-mode envelope with Python `cryptography`.

An implementation independent of the Rust codec: the nexo tests seal a message in Rust and have
this script decrypt it and check its HMAC. Usage: open_envelope.py PASSPHRASE < envelope.json
Prints the plaintext on stdout; exits 1 when the HMAC does not match.
"""

import base64
import hmac
import json
import sys

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC


def main() -> int:
    passphrase = sys.argv[1].encode()
    envelope = json.load(sys.stdin)
    (body,) = envelope.values()
    trailer = body["SecurityTrailer"]

    material = PBKDF2HMAC(
        algorithm=hashes.SHA1(), length=80, salt=b"AdyenNexoV1Salt", iterations=4000
    ).derive(passphrase)
    hmac_key, cipher_key, iv = material[:32], material[32:64], material[64:]

    nonce = base64.b64decode(trailer["Nonce"])
    effective_iv = bytes(a ^ b for a, b in zip(iv, nonce))
    decryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(effective_iv)).decryptor()
    padded = decryptor.update(base64.b64decode(body["NexoBlob"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plaintext = unpadder.update(padded) + unpadder.finalize()

    expected = hmac.new(hmac_key, plaintext, "sha256").digest()
    if not hmac.compare_digest(expected, base64.b64decode(trailer["Hmac"])):
        print("HMAC mismatch", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(plaintext)
    return 0


if __name__ == "__main__":
    sys.exit(main())
