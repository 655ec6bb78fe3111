"""Cryptographic primitives, each a thin, checked layer over a vetted library.

==================  ==========================================  ==========================
module              what                                        library / standard
==================  ==========================================  ==========================
``x25519``          key agreement KA.gen / KA.agree             cryptography, RFC 7748
``kdf``             HKDF-SHA256 with labels + session binding   cryptography, RFC 5869
``aead``            share encryption AE.enc / AE.dec            ChaCha20-Poly1305, RFC 8439
``prg``             mask PRG: ChaCha20 keystream as uint words  cryptography, RFC 8439
``prg_torch``       the same keystream computed by torch        checked against ``prg``
``shamir``          t-of-n sharing SS.share / SS.recon          GF(2^32 - 5), numpy
==================  ==========================================  ==========================
"""
