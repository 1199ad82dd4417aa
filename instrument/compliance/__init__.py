"""Electronic records and signatures (21 CFR Part 11 / EU GMP Annex 11 style).

Users and roles, CLI sessions, the hash-chained audit trail, electronic signatures bound to
what they sign, protocol versions and re-analysis. See docs/compliance.md.
"""
